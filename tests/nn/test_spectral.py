"""Spectral estimates of Hessian and Gauss-Newton operators against dense torch references."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import hvpseries as hs  # noqa: E402
from hvpseries.nn import GGNOperator, HessianOperator  # noqa: E402
from tests.nn.models import dense_ggn, dense_hessian, make_case  # noqa: E402


def _operator_and_dense(kind: str):
    case = make_case("mlp-tanh")
    if kind == "hessian":
        return HessianOperator(case.model, case.loss_fn, case.data), dense_hessian(case)
    return GGNOperator(case.model, case.loss_fn, case.data), dense_ggn(case)


@pytest.mark.parametrize("kind", ["hessian", "ggn"])
def test_extreme_eigenvalues(kind) -> None:
    operator, dense = _operator_and_dense(kind)
    exact = np.linalg.eigvalsh(dense.numpy())
    # The Gauss-Newton matrix of this model has a null space of dimension > 1: one Krylov
    # space holds one vector of it, so only its top is asked for (ARPACK behaves the same).
    which = "BE" if kind == "hessian" else "LA"
    result = hs.eigsh(operator, 4, which=which, rtol=1e-8)
    assert result.status is hs.Status.SUCCESS, result
    ends = np.concatenate([exact[:2], exact[-2:]]) if kind == "hessian" else exact[-4:]
    np.testing.assert_allclose(result.eigenvalues, ends, atol=1e-7 * np.abs(exact).max())
    residuals = dense @ result.eigenvectors - result.eigenvectors * torch.as_tensor(
        result.eigenvalues
    )
    np.testing.assert_allclose(
        torch.linalg.vector_norm(residuals, dim=0).numpy(), result.residual_norms, atol=1e-10
    )


@pytest.mark.parametrize("kind", ["hessian", "ggn"])
def test_trace_and_per_layer_diagonal(kind) -> None:
    operator, dense = _operator_and_dense(kind)
    trace = hs.trace(operator, rtol=1e-2)
    exact = float(torch.trace(dense))
    assert abs(trace.estimate - exact) <= 4 * trace.standard_error + 1e-10 * abs(exact)
    # The diagonal per parameter tensor: unflatten the flat estimate.
    diagonal = hs.diagonal(operator, rtol=1e-2)
    per_layer = operator.unflatten(diagonal.estimate)
    exact_per_layer = operator.unflatten(torch.diagonal(dense).clone())
    assert list(per_layer) == list(exact_per_layer)
    error = torch.linalg.vector_norm(diagonal.estimate - torch.diagonal(dense))
    assert error <= 4 * torch.linalg.vector_norm(diagonal.standard_error) + 1e-10
