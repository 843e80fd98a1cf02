"""The operator tests again, on CuPy arrays and torch CUDA tensors (marker ``gpu``)."""

from __future__ import annotations

import numpy as np
import pytest

import hvpseries as hs
from hvpseries._core._array_api import device, same_device
from tests.backends import Backend
from tests.operators.test_function_and_elementary import (
    test_function_operator_on_every_backend,
    test_identity_and_diagonal,
)
from tests.operators.test_linear_operator import (
    test_adjoint_dot_test,
    test_algebra_matches_dense_algebra,
    test_matvec_and_matmat_equal_the_matrix_product,
    test_todense_materialises,
    test_wrong_shape_names_both_shapes,
)

pytestmark = pytest.mark.gpu

__all__ = [
    "test_adjoint_dot_test",
    "test_algebra_matches_dense_algebra",
    "test_function_operator_on_every_backend",
    "test_identity_and_diagonal",
    "test_matvec_and_matmat_equal_the_matrix_product",
    "test_todense_materialises",
    "test_wrong_shape_names_both_shapes",
]


def test_results_stay_on_the_device(backend: Backend) -> None:
    a = backend.asarray(np.eye(4) * 2.0)
    A = hs.aslinearoperator(a, symmetric=True)
    y = (A @ A).shift(1.0) @ backend.asarray(np.ones(4))
    assert same_device(device(y), backend.device)
    np.testing.assert_allclose(backend.to_numpy(y), 5.0 * np.ones(4))


def test_gpu_sparse_matrices(backend: Backend) -> None:
    dense = np.diag([1.0, 2.0, 3.0]) + np.diag([0.5, 0.5], 1)
    if backend.library == "cupy":
        import cupyx.scipy.sparse as csp

        matrix = csp.csr_matrix(backend.asarray(dense))
    else:
        import torch

        matrix = torch.as_tensor(dense, device=backend.device).to(backend.dtype).to_sparse()
    A = hs.aslinearoperator(matrix)
    x = backend.asarray(np.ones(3))
    np.testing.assert_allclose(backend.to_numpy(A @ x), dense @ np.ones(3), rtol=backend.rtol)
    np.testing.assert_allclose(backend.to_numpy(A.H @ x), dense.T @ np.ones(3), rtol=backend.rtol)
