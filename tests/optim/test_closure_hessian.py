"""The Hessian operator of a closure's graph against dense autograd Hessians."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from hvpseries.optim._closure_hessian import hessian_of_closure  # noqa: E402


def _parameters() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    shapes = [(3, 2), (3,), (2, 2), (4,), (1, 3)]
    return [
        torch.randn(shape, generator=generator, dtype=torch.float64).requires_grad_()
        for shape in shapes
    ]


def _loss(w1, b1, unused, linear, w2) -> torch.Tensor:
    """A tanh network plus a term linear in ``linear``; ``unused`` does not enter the loss."""
    generator = torch.Generator().manual_seed(4)
    inputs = torch.randn(6, 2, generator=generator, dtype=torch.float64)
    hidden = torch.tanh(inputs @ w1.T + b1)
    return (hidden @ w2.T).pow(2).mean() + linear.sum() * 0.5


def _dense_hessian(params: list[torch.Tensor]) -> torch.Tensor:
    sizes = [p.numel() for p in params]

    def flat_loss(flat: torch.Tensor) -> torch.Tensor:
        pieces = torch.split(flat, sizes)
        return _loss(*(piece.view_as(p) for piece, p in zip(pieces, params, strict=True)))

    flat = torch.cat([p.detach().reshape(-1) for p in params])
    return torch.autograd.functional.hessian(flat_loss, flat)


def test_products_equal_the_dense_hessian_with_unused_and_linear_parameters() -> None:
    params = _parameters()
    gradient, hessian = hessian_of_closure(_loss(*params), params)
    dense = _dense_hessian(params)
    n = dense.shape[0]
    assert hessian.shape == (n, n)
    assert not gradient.requires_grad
    expected_gradient = torch.cat(
        [
            g.reshape(-1) if g is not None else torch.zeros(p.numel(), dtype=p.dtype)
            for g, p in zip(
                torch.autograd.grad(_loss(*params), params, allow_unused=True),
                params,
                strict=True,
            )
        ]
    )
    torch.testing.assert_close(gradient, expected_gradient, rtol=1e-12, atol=1e-14)
    block = torch.randn(n, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(hessian.matmat(block), dense @ block, rtol=1e-10, atol=1e-12)
    for j in range(3):  # a column of a block is a strided (non-contiguous) vector
        column = block[:, j]
        torch.testing.assert_close(hessian.matvec(column), dense @ column, rtol=1e-10, atol=1e-12)
    # rows of the unused and linear parameters (and their columns) are exactly zero
    assert torch.all(dense[9:17] == 0)
    assert torch.all(hessian.matmat(block)[9:17] == 0)


def test_a_loss_linear_in_every_parameter_has_a_zero_hessian() -> None:
    weight = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    gradient, hessian = hessian_of_closure((weight * 3.0).sum(), [weight])
    torch.testing.assert_close(gradient, torch.full((2,), 3.0, dtype=torch.float64))
    vector = torch.tensor([0.5, 4.0], dtype=torch.float64)
    assert torch.all(hessian.matvec(vector) == 0)
    assert torch.all(hessian.matmat(torch.eye(2, dtype=torch.float64)) == 0)


class _TanhDerivative(torch.autograd.Function):
    """``g (1 - tanh(x)^2)`` whose own backward reads a Python number (no batching rule)."""

    @staticmethod
    def forward(ctx, x, g):
        ctx.save_for_backward(x, g)
        return g * (1 - torch.tanh(x) ** 2)

    @staticmethod
    def backward(ctx, upstream):
        x, g = ctx.saved_tensors
        if upstream.sum().item() != upstream.sum().item():  # .item() cannot run under vmap
            upstream = torch.zeros_like(upstream)
        t = torch.tanh(x)
        return upstream * g * (-2 * t * (1 - t**2)), upstream * (1 - t**2)


class _TanhWithoutBatchingRule(torch.autograd.Function):
    """tanh whose Hessian-vector products cannot be batched: ``matmat`` must loop."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.tanh(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return _TanhDerivative.apply(x, g)


@pytest.mark.parametrize("activation", ["tanh", "no batching rule"])
def test_every_parameter_curved_and_the_block_fallback(activation) -> None:
    generator = torch.Generator().manual_seed(6)
    w1 = torch.randn(4, 3, generator=generator, dtype=torch.float64).requires_grad_()
    w2 = torch.randn(2, 4, generator=generator, dtype=torch.float64).requires_grad_()
    inputs = torch.randn(5, 3, generator=generator, dtype=torch.float64)
    squash = torch.tanh if activation == "tanh" else _TanhWithoutBatchingRule.apply

    def loss_of(first, second):
        return (squash(inputs @ first.T) @ second.T).pow(2).mean()

    _, hessian = hessian_of_closure(loss_of(w1, w2), [w1, w2])
    dense = torch.autograd.functional.hessian(
        lambda flat: loss_of(flat[:12].view(4, 3), flat[12:].view(2, 4)),
        torch.cat([w1.detach().reshape(-1), w2.detach().reshape(-1)]),
    )
    block = torch.randn(20, 4, generator=generator, dtype=torch.float64)
    if activation != "tanh":  # the batched backward really fails, so the loop is tested
        gradient = torch.autograd.grad(loss_of(w1, w2), [w1, w2], create_graph=True)
        with pytest.raises(RuntimeError):
            torch.autograd.grad(
                gradient,
                [w1, w2],
                grad_outputs=[block.T[:, :12].reshape(4, 4, 3), block.T[:, 12:].reshape(4, 2, 4)],
                is_grads_batched=True,
            )
    torch.testing.assert_close(hessian.matmat(block), dense @ block, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(hessian.matvec(block[:, 0]), dense @ block[:, 0])
