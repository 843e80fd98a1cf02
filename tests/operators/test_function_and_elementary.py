"""FunctionOperator, IdentityOperator, DiagonalOperator and CountingOperator."""

from __future__ import annotations

import numpy as np
import pytest

import hvpseries as hs
from tests.backends import Backend


def test_function_operator_on_every_backend(backend: Backend) -> None:
    weights = backend.asarray(np.array([1.0, -2.0, 3.0]))
    A = hs.FunctionOperator(lambda v: weights * v, (3, 3), like=weights, symmetric=True)
    assert A.xp is backend.xp and A.dtype == backend.dtype
    X = backend.asarray(np.arange(6.0).reshape(3, 2))
    np.testing.assert_allclose(
        backend.to_numpy(A @ X), np.array([1.0, -2, 3])[:, None] * np.arange(6.0).reshape(3, 2)
    )
    np.testing.assert_allclose(backend.to_numpy(A.H @ X[:, 0]), [0.0, -4.0, 12.0])


def test_function_operator_uses_matmat_when_given() -> None:
    calls = []

    def matmat(X):
        calls.append(X.shape)
        return 3 * X

    A = hs.FunctionOperator(lambda v: 3 * v, (2, 2), matmat=matmat)
    np.testing.assert_allclose(A @ np.ones((2, 4)), 3 * np.ones((2, 4)))
    assert calls == [(2, 4)]


def test_function_operator_adjoint_from_rmatvec_or_rmatmat() -> None:
    a = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    by_vector = hs.FunctionOperator(lambda v: a @ v, (3, 2), rmatvec=lambda v: a.T @ v)
    by_block = hs.FunctionOperator(lambda v: a @ v, (3, 2), rmatmat=lambda V: a.T @ V)
    y, Y = np.ones(3), np.ones((3, 2))
    for A in (by_vector, by_block):
        np.testing.assert_allclose(A.H @ y, a.T @ y)
        np.testing.assert_allclose(A.H @ Y, a.T @ Y)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"matvec": None}, "matvec must be callable"),
        ({"matvec": 3}, "matvec must be callable"),
        ({"matmat": "no"}, "matmat must be callable"),
        ({"shape": (2,)}, "pair of non-negative integers"),
        ({"shape": (-1, 2)}, "pair of non-negative integers"),
        ({"dtype": np.int32}, "floating point"),
    ],
)
def test_function_operator_bad_arguments(kwargs, match) -> None:
    arguments = {"matvec": lambda v: v, "shape": (2, 2), **kwargs}
    matvec, shape = arguments.pop("matvec"), arguments.pop("shape")
    with pytest.raises((TypeError, ValueError), match=match):
        hs.FunctionOperator(matvec, shape, **arguments)


def test_function_operator_checks_the_output_shape() -> None:
    A = hs.FunctionOperator(lambda v: v[:1], (2, 2))
    with pytest.raises(ValueError, match=r"returned \(1,\), expected .*\(2,\)"):
        A @ np.ones(2)
    B = hs.FunctionOperator(lambda v: 1.0, (2, 2))
    with pytest.raises(ValueError, match="returned float"):
        B @ np.ones(2)


def test_identity_and_diagonal(backend: Backend) -> None:
    d = backend.asarray(np.array([2.0, -1.0, 0.5]))
    x = backend.asarray(np.array([1.0, 2.0, 3.0]))
    identity = hs.IdentityOperator(3, like=x)
    diagonal = hs.DiagonalOperator(d)
    np.testing.assert_allclose(backend.to_numpy(identity @ x), [1.0, 2.0, 3.0])
    np.testing.assert_allclose(backend.to_numpy((diagonal + identity) @ x), [3.0, 0.0, 4.5])
    np.testing.assert_allclose(backend.to_numpy(diagonal.todense()), np.diag([2.0, -1.0, 0.5]))
    np.testing.assert_allclose(backend.to_numpy(identity.todense()), np.eye(3))
    assert diagonal.psd is False and identity.psd is True


def test_diagonal_bad_input() -> None:
    with pytest.raises(ValueError, match="1-D"):
        hs.DiagonalOperator(np.ones((2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        hs.DiagonalOperator(np.array([np.inf]))
    with pytest.raises(TypeError, match="floating point"):
        hs.DiagonalOperator(np.arange(3))


def test_counting_counts_columns_and_calls() -> None:
    A = hs.CountingOperator(hs.aslinearoperator(np.eye(3), symmetric=True))
    assert A.symmetric is True
    A @ np.ones(3)
    A @ np.ones((3, 5))
    A.H @ np.ones(3)
    (A @ A) @ np.ones(3)
    assert (A.n_matvec, A.n_calls) == (9, 5)  # A.H is A itself: a symmetric adjoint
    A.reset()
    assert (A.n_matvec, A.n_rmatvec, A.n_calls) == (0, 0, 0)


def test_counting_rmatvec_of_nonsymmetric() -> None:
    A = hs.CountingOperator(hs.aslinearoperator(np.ones((2, 3))))
    A.H @ np.ones(2)
    A.rmatmat(np.ones((2, 4)))
    assert A.n_rmatvec == 5 and A.n_matvec == 0


def test_counting_needs_an_operator() -> None:
    with pytest.raises(TypeError, match="aslinearoperator"):
        hs.CountingOperator(np.eye(2))


def test_function_operator_output_dtype_is_checked() -> None:
    A = hs.FunctionOperator(lambda v: v.astype(np.float32), (2, 2))
    with pytest.raises(TypeError, match="returned float32 for float64 input"):
        A @ np.ones(2)


@pytest.mark.parametrize("shape", [(2.5, 2), (2, 3.0), (True, 2)])
def test_non_integer_shapes_are_refused(shape) -> None:
    with pytest.raises(ValueError, match="non-negative integers"):
        hs.FunctionOperator(lambda v: v, shape)
