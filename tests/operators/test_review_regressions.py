"""Regression tests for problems an outside review found in the operator layer."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as sla

import hvpseries as hs

torch = pytest.importorskip("torch")


def test_complex_scaling_and_shift_of_a_real_torch_operator() -> None:
    a = torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    A = hs.aslinearoperator(a)
    x = torch.ones(3, dtype=torch.complex128)
    expected = 1j * (a.to(torch.complex128) @ x)
    torch.testing.assert_close((1j * A) @ x, expected)
    real = torch.ones(3, dtype=torch.float64)
    torch.testing.assert_close(A.shift(1j) @ real, a.to(torch.complex128) @ x + 1j * x)


def test_mixed_precision_composites_are_refused() -> None:
    A32 = hs.aslinearoperator(torch.eye(2))
    A64 = hs.aslinearoperator(torch.eye(2, dtype=torch.float64))
    with pytest.raises(TypeError, match="one precision"):
        A32 + A64
    with pytest.raises(TypeError, match="one precision"):
        A32 @ A64


def test_scipy_operator_without_adjoint_uses_symmetry() -> None:
    op = sla.LinearOperator((2, 2), matvec=lambda x: 2 * x, dtype=np.float64)
    A = hs.aslinearoperator(op, symmetric=True)
    np.testing.assert_allclose(A.rmatvec(np.ones(2)), [2.0, 2.0])
    np.testing.assert_allclose((2 * A).rmatmat(np.ones((2, 2))), 4 * np.ones((2, 2)))
    with pytest.raises(TypeError, match="cannot apply its adjoint"):
        hs.aslinearoperator(op).rmatvec(np.ones(2))


def test_building_formats_are_converted() -> None:
    for matrix in (sp.lil_matrix(np.eye(3)), sp.dok_matrix(np.eye(3))):
        np.testing.assert_allclose(hs.aslinearoperator(matrix) @ np.ones(3), np.ones(3))


def test_function_operator_output_dtype_is_checked() -> None:
    A = hs.FunctionOperator(lambda v: v.astype(np.float32), (2, 2))
    with pytest.raises(TypeError, match="returned float32 for float64 input"):
        A @ np.ones(2)


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


@pytest.mark.parametrize("shape", [(2.5, 2), (2, 3.0), (True, 2)])
def test_non_integer_shapes_are_refused(shape) -> None:
    with pytest.raises(ValueError, match="non-negative integers"):
        hs.FunctionOperator(lambda v: v, shape)


def test_dtype_of_another_library_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="not a dtype of numpy"):
        hs.FunctionOperator(lambda v: v, (2, 2), dtype=torch.float64)


def test_array_of_another_library_on_the_left() -> None:
    A = hs.aslinearoperator(torch.eye(2, dtype=torch.float64))
    with pytest.raises(TypeError, match="Mismatched array namespaces"):
        np.ones((3, 2)) @ A
