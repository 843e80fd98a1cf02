"""LinearOperator: checked application, algebra, adjoints and structure tags on every backend."""

from __future__ import annotations

import numpy as np
import pytest

import hvpseries as hs
from tests.backends import Backend


def _random(backend: Backend, shape: tuple[int, ...], seed: int = 0):
    return backend.asarray(np.random.default_rng(seed).standard_normal(shape))


def _close(backend: Backend, actual, expected) -> None:
    np.testing.assert_allclose(
        backend.to_numpy(actual), backend.to_numpy(expected), rtol=backend.rtol, atol=backend.rtol
    )


def test_matvec_and_matmat_equal_the_matrix_product(backend: Backend) -> None:
    matrix = _random(backend, (5, 3))
    A = hs.aslinearoperator(matrix)
    x, X = _random(backend, (3,), 1), _random(backend, (3, 4), 2)
    assert A.shape == (5, 3) and A.dtype == backend.dtype and A.xp is backend.xp
    _close(backend, A.matvec(x), matrix @ x)
    _close(backend, A.matmat(X), matrix @ X)
    _close(backend, A @ x, matrix @ x)
    _close(backend, A @ X, matrix @ X)
    assert A.matvec(x[:, None]).shape == (5, 1)


def test_adjoint_dot_test(backend: Backend) -> None:
    A = hs.aslinearoperator(_random(backend, (6, 4)))
    x, y = _random(backend, (4,), 1), _random(backend, (6,), 2)
    xp = backend.xp
    left = float(xp.vecdot(A @ x, y))
    right = float(xp.vecdot(x, A.H @ y))
    assert left == pytest.approx(right, rel=100 * backend.eps)
    _close(backend, A.rmatmat(xp.stack([y, y], axis=1))[:, 0], A.rmatvec(y))
    _close(backend, A.T.T @ x, A @ x)


def test_algebra_matches_dense_algebra(backend: Backend) -> None:
    a, b = _random(backend, (4, 4), 1), _random(backend, (4, 4), 2)
    A, B = hs.aslinearoperator(a), hs.aslinearoperator(b)
    x = _random(backend, (4,), 3)
    cases = {
        "sum": (A + B, a @ x + b @ x),
        "difference": (A - B, a @ x - b @ x),
        "negation": (-A, -(a @ x)),
        "scaling": (2.5 * A, 2.5 * (a @ x)),
        "right scaling": (A * 2.5, 2.5 * (a @ x)),
        "division": (A / 4, (a @ x) / 4),
        "product": (A @ B, a @ (b @ x)),
        "power": (A**3, a @ (a @ (a @ x))),
        "power zero": (A**0, x),
        "shift": (A.shift(0.5), a @ x + 0.5 * x),
        "transpose": (A.T, backend.xp.matrix_transpose(a) @ x),
    }
    for name, (operator, expected) in cases.items():
        assert isinstance(operator, hs.LinearOperator), name
        _close(backend, operator @ x, expected)
        _close(backend, operator.matmat(x[:, None])[:, 0], expected)


def test_todense_materialises(backend: Backend) -> None:
    a = _random(backend, (3, 5))
    composite = hs.aslinearoperator(a) * 2.0
    _close(backend, composite.todense(), 2.0 * a)


def test_input_from_another_library_is_a_type_error(backend: Backend) -> None:
    A = hs.aslinearoperator(_random(backend, (3, 3)))
    other = np.ones(3) if backend.library != "numpy" else _torch_ones(3)
    with pytest.raises(TypeError, match="Mismatched array namespaces"):
        A @ other


def _torch_ones(n: int):
    torch = pytest.importorskip("torch")
    return torch.ones(n, dtype=torch.float64)


def test_wrong_shape_names_both_shapes(backend: Backend) -> None:
    A = hs.aslinearoperator(_random(backend, (3, 4)))
    with pytest.raises(ValueError, match=r"expects shape \(4,\).*got \(3,\)"):
        A.matvec(_random(backend, (3,)))
    with pytest.raises(ValueError, match=r"expects shape \(4, k\)"):
        A.matmat(_random(backend, (4,)))
    with pytest.raises(ValueError, match="got"):
        A.matvec(_random(backend, (4, 2)))


def test_integer_input_is_a_type_error(backend: Backend) -> None:
    A = hs.aslinearoperator(_random(backend, (3, 3)))
    with pytest.raises(TypeError, match="floating point"):
        A @ backend.asarray(np.arange(3), dtype=backend.xp.int64)


def test_precision_is_never_silently_lost() -> None:
    A = hs.aslinearoperator(np.eye(3, dtype=np.float32))
    message = r"input to .* has dtype float64 but the operator computes in float32"
    with pytest.raises(TypeError, match=message):
        A @ np.ones(3)
    B = hs.aslinearoperator(np.eye(3))
    assert (B @ np.ones(3, dtype=np.float32)).dtype == np.float64


def test_mixed_devices_are_a_value_error() -> None:
    torch = pytest.importorskip("torch")
    A = hs.aslinearoperator(torch.eye(3, dtype=torch.float64))
    x = torch.ones(3, dtype=torch.float64, device="meta")
    with pytest.raises(ValueError, match="device meta"):
        A @ x


def test_non_array_input_is_a_type_error() -> None:
    A = hs.aslinearoperator(np.eye(2))
    with pytest.raises(TypeError, match="expects an array"):
        A.matvec([1.0, 2.0])


def test_operators_of_different_libraries_do_not_combine() -> None:
    torch = pytest.importorskip("torch")
    A = hs.aslinearoperator(np.eye(2))
    B = hs.aslinearoperator(torch.eye(2, dtype=torch.float64))
    with pytest.raises(TypeError, match="numpy and B on torch"):
        A + B
    with pytest.raises(TypeError, match="Mismatched"):
        A @ B


def test_algebra_shape_errors() -> None:
    A, B = hs.aslinearoperator(np.ones((2, 3))), hs.aslinearoperator(np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(2, 2\)"):
        A + B
    with pytest.raises(ValueError, match="inner dimensions 3 and 2"):
        A @ B
    with pytest.raises(ValueError, match="square"):
        A**2
    with pytest.raises(ValueError, match="square"):
        A.shift(1.0)


@pytest.mark.parametrize("power", [-1, 1.5, True, "2"])
def test_bad_powers(power) -> None:
    A = hs.aslinearoperator(np.eye(2))
    error = ValueError if power == -1 else TypeError
    with pytest.raises(error, match=r"k >= 0|integer"):
        A**power


def test_bad_scalars() -> None:
    A = hs.aslinearoperator(np.eye(2))
    with pytest.raises(TypeError, match="A @ B"):
        A * A
    with pytest.raises(TypeError):
        A * "2"
    with pytest.raises(TypeError):
        A + 1.0
    with pytest.raises(ValueError, match="zero"):
        A / 0
    with pytest.raises(TypeError, match="number"):
        A.shift(np.ones(2))


def test_array_on_the_left_applies_the_transpose() -> None:
    a = np.arange(6.0).reshape(2, 3)
    A = hs.aslinearoperator(a)
    np.testing.assert_allclose(np.ones(2) @ A, np.ones(2) @ a)
    np.testing.assert_allclose(np.ones((4, 2)) @ A, np.ones((4, 2)) @ a)


def test_complex_transpose_and_adjoint_differ() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 3)) + 1j * rng.standard_normal((3, 3))
    A = hs.aslinearoperator(a)
    x = rng.standard_normal(3) + 1j * rng.standard_normal(3)
    np.testing.assert_allclose(A.T @ x, a.T @ x)
    np.testing.assert_allclose(A.H @ x, a.conj().T @ x)
    np.testing.assert_allclose((A.T).H @ x, a.conj() @ x)
    np.testing.assert_allclose((1j * A) @ x, 1j * (a @ x))
    assert (2.0 * hs.aslinearoperator(np.eye(2)) * 1j).dtype == np.complex128


def test_to_scipy_round_trip() -> None:
    import scipy.sparse.linalg as sla

    a = np.array([[4.0, 1.0], [1.0, 3.0]])
    scipy_operator = hs.aslinearoperator(a, symmetric=True).to_scipy()
    assert isinstance(scipy_operator, sla.LinearOperator)
    np.testing.assert_allclose(scipy_operator @ np.ones(2), a @ np.ones(2))
    np.testing.assert_allclose(scipy_operator.rmatvec(np.ones(2)), a.T @ np.ones(2))


def test_to_scipy_refuses_device_backends() -> None:
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="NumPy"):
        hs.aslinearoperator(torch.eye(2)).to_scipy()


def test_missing_adjoint_is_reported() -> None:
    A = hs.FunctionOperator(lambda x: 2 * x, (2, 2))
    with pytest.raises(TypeError, match="rmatvec="):
        A.rmatvec(np.ones(2))


def test_subclass_must_implement_an_application() -> None:
    class Empty(hs.LinearOperator):
        pass

    with pytest.raises(TypeError, match="_matmat or _matvec"):
        Empty((2, 2), np.float64, xp=hs.IdentityOperator(1).xp, device="cpu")


def test_repr_describes_the_operator() -> None:
    text = repr(hs.IdentityOperator(3) @ hs.IdentityOperator(3))
    assert "3x3 ProductOperator" in text and "float64" in text and "numpy" in text


def test_checked_once_fast_path_still_refuses_bad_input():
    """After a full check, ready inputs skip it; anything else is still checked and refused."""
    A = hs.aslinearoperator(np.diag([1.0, 2.0, 3.0]))
    assert not A._is_ready(np.ones(3), 1)  # nothing was checked yet
    np.testing.assert_array_equal(A.matvec(np.ones(3)), [1.0, 2.0, 3.0])
    assert A._is_ready(np.ones(3), 1) and A._is_ready(np.ones((3, 2)), 2)
    assert not A._is_ready(np.ones(4), 1)
    assert not A._is_ready(np.ones(3, dtype=np.float32), 1)
    with pytest.raises(ValueError, match="expects shape"):
        A.matvec(np.ones(4))
    with pytest.raises(ValueError, match="expects shape"):
        A.matmat(np.ones((4, 2)))
    with pytest.raises(TypeError):
        A.matvec([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(A.matvec(np.ones(3, dtype=np.float32)), [1.0, 2.0, 3.0])


def test_subclass_with_a_bare_numpy_namespace() -> None:
    class Doubling(hs.LinearOperator):
        def _matvec(self, x):
            return 2 * x

    A = Doubling((2, 2), np.float64, xp=np, device="cpu", symmetric=True)
    np.testing.assert_allclose(A @ np.ones(2), [2.0, 2.0])


def test_subclass_with_only_rmatvec_applies_adjoint_blocks() -> None:
    a = np.arange(6.0).reshape(2, 3)

    class Explicit(hs.LinearOperator):
        def _matvec(self, x):
            return a @ x

        def _rmatvec(self, x):
            return a.T @ x

    A = Explicit((2, 3), np.float64, xp=np, device="cpu")
    np.testing.assert_allclose(A.rmatmat(np.ones((2, 2))), a.T @ np.ones((2, 2)))
    np.testing.assert_allclose(A.H.todense(), a.T)


def test_to_scipy_accepts_column_vectors() -> None:
    scipy_operator = hs.DiagonalOperator(np.array([1.0, 2.0, 3.0])).to_scipy()
    np.testing.assert_allclose(scipy_operator.matvec(np.ones((3, 1))), [[1.0], [2.0], [3.0]])


@pytest.mark.parametrize("shift", [float("nan"), float("inf"), complex(0.0, float("nan"))])
def test_non_finite_shift_is_refused(shift) -> None:
    with pytest.raises(ValueError, match="shift must be finite"):
        hs.aslinearoperator(np.eye(2)).shift(shift)
