"""Regression tests for problems an outside review found in hvpseries.nn."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

from hvpseries.nn import HessianOperator  # noqa: E402


def _model_and_data(batch_norm: bool = False):
    torch.manual_seed(0)
    layers = [torch.nn.Linear(3, 5)]
    if batch_norm:
        layers.append(torch.nn.BatchNorm1d(5))
    layers += [torch.nn.Tanh(), torch.nn.Linear(5, 1)]
    model = torch.nn.Sequential(*layers).double()
    data = (torch.randn(12, 3, dtype=torch.float64), torch.randn(12, 1, dtype=torch.float64))
    return model, data


def test_parameters_replaced_by_load_state_dict_assign() -> None:
    model, data = _model_and_data()
    loss = torch.nn.functional.mse_loss
    H = HessianOperator(model, loss, data)
    v = torch.ones(H.shape[0], dtype=torch.float64)
    _ = H @ v
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(1.7)
    model.load_state_dict(other.state_dict(), assign=True)
    fresh = HessianOperator(model, loss, data)
    torch.testing.assert_close(H @ v, fresh @ v)
    torch.testing.assert_close(H.gradient(), fresh.gradient())


def test_parameter_data_replaced() -> None:
    model, data = _model_and_data()
    loss = torch.nn.functional.mse_loss
    H = HessianOperator(model, loss, data)
    v = torch.ones(H.shape[0], dtype=torch.float64)
    _ = H @ v
    first = next(model.parameters())
    first.data = first.data * 2.0
    torch.testing.assert_close(H @ v, HessianOperator(model, loss, data) @ v)


def test_microbatching_batch_norm_in_train_mode_is_refused() -> None:
    model, data = _model_and_data(batch_norm=True)
    with pytest.raises(ValueError, match="BatchNorm layers in train mode"):
        HessianOperator(model, torch.nn.functional.mse_loss, data, microbatch_size=4) @ torch.ones(
            sum(p.numel() for p in model.parameters()), dtype=torch.float64
        )
    model.eval()
    H = HessianOperator(model, torch.nn.functional.mse_loss, data, microbatch_size=4)
    whole = HessianOperator(model, torch.nn.functional.mse_loss, data)
    v = torch.ones(H.shape[0], dtype=torch.float64)
    torch.testing.assert_close(H @ v, whole @ v)


def test_vectors_of_another_dtype_are_refused() -> None:
    model, data = _model_and_data()
    H = HessianOperator(model, torch.nn.functional.mse_loss, data)
    with pytest.raises(TypeError, match=r"parameters are torch\.float64"):
        H @ torch.ones(H.shape[0], dtype=torch.float32)


class _Scale(torch.nn.Module):
    """``tanh(x * w)`` summed: autograd saves the leaf ``w`` itself, not a view of its data."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(n, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x * self.w).sum(1, keepdim=True)


def test_parameter_data_at_a_reused_address_is_not_stale() -> None:
    # ``p.data = t`` keeps p's version counter, so the point is recognised by the address of
    # the data. Once the old data is freed, the allocator may place new data of the same size
    # at that address: the operator must not take it for the point it has cached (the
    # Hessian and the gradient were stale by O(1) at the third point here, glibc malloc).
    torch.manual_seed(0)
    n = 64
    model = _Scale(n)
    data = (torch.randn(10, n, dtype=torch.float64), torch.randn(10, 1, dtype=torch.float64))
    loss = torch.nn.functional.mse_loss
    H = HessianOperator(model, loss, data)
    v = torch.randn(n, dtype=torch.float64)
    for _ in range(100):
        model.w.data = torch.randn(n, dtype=torch.float64)  # frees the cached point's data
        model.w.data = torch.randn(n, dtype=torch.float64)
        fresh = HessianOperator(model, loss, data)
        torch.testing.assert_close(H @ v, fresh @ v)
        torch.testing.assert_close(H.gradient(), fresh.gradient())
