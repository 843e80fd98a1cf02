"""The operators compose with hvpseries solvers."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import hvpseries as hs  # noqa: E402
from hvpseries.nn import GGNOperator, HessianOperator  # noqa: E402
from tests.nn.models import assert_close, dense_hessian, make_case  # noqa: E402


def _dense_abs_inv(matrix, b, damping):
    eigenvalues, vectors = torch.linalg.eigh(matrix)
    return vectors @ ((vectors.T @ b) / (eigenvalues.abs() + damping))


@pytest.mark.parametrize("method", ["lanczos", "auto"])
def test_abs_inv_of_hessian_equals_dense(method):
    case = make_case("bn-train")
    H = hs.CountingOperator(HessianOperator(case.model, case.loss_fn, case.data))
    g = H.operator.gradient()
    damping = 1e-2
    result = hs.abs_inv(H, g, damping=damping, method=method, rtol=1e-10, maxiter=200, throw=True)
    reference = _dense_abs_inv(dense_hessian(case), g, damping)
    assert float(torch.linalg.eigvalsh(dense_hessian(case)).min()) < 0  # indefinite
    assert_close(result.x, reference, rtol=1e-8)
    assert result.n_matvec == H.n_matvec > 0


def test_abs_inv_of_ggn_is_its_inverse():
    case = make_case("mlp-relu")
    G = GGNOperator(case.model, case.loss_fn, case.data)
    g = G.gradient()
    result = hs.abs_inv(G, g, damping=1e-1, method="lanczos", rtol=1e-10, maxiter=200, throw=True)
    dense = G.todense()
    expected = torch.linalg.solve(dense + 1e-1 * torch.eye(G.shape[0], dtype=dense.dtype), g)
    assert_close(result.x, expected, rtol=1e-8)
