"""MatrixOperator and aslinearoperator over dense, sparse and duck-typed inputs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as sla

import hvpseries as hs


def _sample(n=5, seed=0):
    rng = np.random.default_rng(seed)
    dense = sp.random(n, n, density=0.5, random_state=seed).toarray() + np.eye(n)
    return dense, rng.standard_normal(n), rng.standard_normal((n, 2))


@pytest.mark.parametrize("form", ["csr_matrix", "csr_array", "coo_array", "csc_matrix"])
def test_scipy_sparse(form) -> None:
    dense, x, X = _sample()
    A = hs.aslinearoperator(getattr(sp, form)(dense))
    assert isinstance(A, hs.MatrixOperator)
    np.testing.assert_allclose(A @ x, dense @ x)
    np.testing.assert_allclose(A @ X, dense @ X)
    np.testing.assert_allclose(A.H @ x, dense.T @ x)
    np.testing.assert_allclose(A.todense(), dense)


@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_torch_sparse(layout) -> None:
    torch = pytest.importorskip("torch")
    dense, x, X = _sample()
    t = torch.as_tensor(dense)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch: "sparse CSR support is in beta"
        A = hs.aslinearoperator(t.to_sparse() if layout == "coo" else t.to_sparse_csr())
        np.testing.assert_allclose((A @ torch.as_tensor(x)).numpy(), dense @ x)
        np.testing.assert_allclose((A @ torch.as_tensor(X)).numpy(), dense @ X)
        np.testing.assert_allclose((A.H @ torch.as_tensor(x)).numpy(), dense.T @ x)
        np.testing.assert_allclose(A.todense().numpy(), dense)
    assert A.device == torch.device("cpu") and A.dtype == torch.float64


def test_scipy_linear_operator_is_wrapped() -> None:
    dense, x, X = _sample()
    A = hs.aslinearoperator(sla.aslinearoperator(dense))
    assert isinstance(A, hs.FunctionOperator)
    np.testing.assert_allclose(A @ x, dense @ x)
    np.testing.assert_allclose(A @ X, dense @ X)
    np.testing.assert_allclose(A.H @ x, dense.T @ x)


def test_duck_type_is_wrapped() -> None:
    class Doubling:
        shape = (3, 3)
        dtype = np.float64

        def matvec(self, x):
            return 2 * x

    A = hs.aslinearoperator(Doubling(), symmetric=True)
    np.testing.assert_allclose(A @ np.ones(3), 2 * np.ones(3))
    np.testing.assert_allclose(A.H @ np.ones(3), 2 * np.ones(3))


def test_complex_dense_adjoint() -> None:
    a = np.array([[1.0, 2j], [0.0, 1.0]])
    A = hs.MatrixOperator(a)
    np.testing.assert_allclose(A.H @ np.ones(2), a.conj().T @ np.ones(2))


@pytest.mark.parametrize(
    ("matrix", "error", "match"),
    [
        (np.ones(3), ValueError, "2-D"),
        (np.ones((2, 2), dtype=np.int64), TypeError, "floating point"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), ValueError, "NaN or infinite"),
        (sp.csr_matrix(np.array([[np.inf, 0.0], [0.0, 1.0]])), ValueError, "NaN or infinite"),
        ("matrix", TypeError, "2-D array or a sparse matrix"),
    ],
)
def test_bad_matrices(matrix, error, match) -> None:
    with pytest.raises(error, match=match):
        hs.MatrixOperator(matrix)


def test_check_finite_can_be_skipped() -> None:
    A = hs.MatrixOperator(np.array([[np.nan]]), check_finite=False)
    assert np.isnan((A @ np.ones(1))[0])


@pytest.mark.parametrize("obj", [[[1.0]], 3.0, None, lambda x: x])
def test_aslinearoperator_rejects_unknown_types(obj) -> None:
    with pytest.raises(TypeError, match="cannot make a LinearOperator"):
        hs.aslinearoperator(obj)


def test_matrix_is_not_copied_but_todense_is() -> None:
    a = np.eye(2)
    A = hs.MatrixOperator(a)
    assert A.matrix is a
    assert A.todense() is not a


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
