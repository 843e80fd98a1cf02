"""Small float64 models, data and dense references for the hvpseries.nn tests."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

DTYPE = torch.float64


@dataclass
class Case:
    """A model, a loss and data, with a name for test ids."""

    name: str
    model: nn.Module
    loss_fn: Any
    batches: list[tuple[torch.Tensor, torch.Tensor]]

    @property
    def data(self) -> Any:
        return self.batches[0] if len(self.batches) == 1 else self.batches


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _regression(n: int, d_in: int, d_out: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = _generator(seed)
    return torch.randn(n, d_in, generator=g, dtype=DTYPE), torch.randn(
        n, d_out, generator=g, dtype=DTYPE
    )


def _classification(n: int, shape: tuple[int, ...], classes: int, seed: int) -> tuple:
    g = _generator(seed)
    return torch.randn(n, *shape, generator=g, dtype=DTYPE), torch.randint(
        0, classes, (n,), generator=g
    )


def _warm_batch_norm(model: nn.Module, inputs: torch.Tensor) -> None:
    """Give running statistics non-trivial values (a few training-mode forwards)."""
    model.train()
    with torch.no_grad():
        for scale in (0.5, 1.5, 3.0):
            model(inputs * scale + 0.3)


def make_case(name: str, n_batches: int = 1) -> Case:
    torch.manual_seed(1234)
    if name == "mlp-tanh":
        model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))
        batches = [_regression(7, 3, 2, seed=i) for i in range(n_batches)]
        loss_fn = nn.MSELoss()
    elif name == "mlp-relu":
        model = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 3))
        batches = [_classification(9, (3,), 3, seed=i) for i in range(n_batches)]
        loss_fn = F.cross_entropy
    elif name == "mlp-nobias":
        model = nn.Sequential(nn.Linear(3, 5, bias=False), nn.Tanh(), nn.Linear(5, 2, bias=False))
        batches = [_regression(6, 3, 2, seed=i) for i in range(n_batches)]
        loss_fn = F.mse_loss
    elif name == "cnn":
        model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
        batches = [_classification(5, (1, 6, 6), 3, seed=i) for i in range(n_batches)]
        loss_fn = nn.CrossEntropyLoss()
    elif name in ("bn-eval", "bn-train"):
        model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 2))
        batches = [_regression(8, 3, 2, seed=i) for i in range(n_batches)]
        loss_fn = nn.MSELoss()
        _warm_batch_norm(model.to(DTYPE), batches[0][0])
    elif name in ("cnn-bn-eval", "cnn-bn-train"):
        model = nn.Sequential(
            nn.Conv2d(1, 2, 3),
            nn.BatchNorm2d(2),
            nn.Tanh(),
            nn.Flatten(),
            nn.Linear(2 * 3 * 3, 2),
        )
        batches = [_classification(4, (1, 5, 5), 2, seed=i) for i in range(n_batches)]
        loss_fn = F.cross_entropy
        _warm_batch_norm(model.to(DTYPE), batches[0][0])
    else:
        raise ValueError(name)
    model = model.to(DTYPE)
    if name.endswith("eval"):
        model.eval()
    else:
        model.train()
    return Case(name, model, loss_fn, batches)


CASES = ["mlp-tanh", "mlp-relu", "mlp-nobias", "cnn", "bn-eval", "bn-train", "cnn-bn-train"]
SMOOTH_CASES = ["mlp-tanh", "mlp-nobias", "cnn", "bn-eval", "bn-train", "cnn-bn-train"]


def flat_loss(case: Case, names: list[str] | None = None):
    """The mean loss as a function of the flat selected parameters, on a copy of the model.

    Plain autograd through ``functional_call``: independent of the code under test. The copy's
    running statistics may change (training mode); the loss does not depend on them then.
    """
    model = copy.deepcopy(case.model)
    named = dict(model.named_parameters())
    names = list(named) if names is None else names
    shapes = [named[name].shape for name in names]
    sizes = [named[name].numel() for name in names]
    total = sum(x.shape[0] for x, _ in case.batches)

    def loss(theta: torch.Tensor) -> torch.Tensor:
        parts = dict(
            zip(
                names,
                (p.view(s) for p, s in zip(theta.split(sizes), shapes, strict=True)),
                strict=True,
            )
        )
        value = theta.new_zeros(())
        for inputs, targets in case.batches:
            outputs = torch.func.functional_call(model, parts, (inputs,))
            value = value + inputs.shape[0] / total * case.loss_fn(outputs, targets)
        return value

    theta = torch.cat([named[name].detach().reshape(-1) for name in names])
    return loss, theta


def dense_hessian(case: Case, names: list[str] | None = None) -> torch.Tensor:
    loss, theta = flat_loss(case, names)
    return torch.autograd.functional.hessian(loss, theta)


def dense_gradient(case: Case, names: list[str] | None = None) -> torch.Tensor:
    loss, theta = flat_loss(case, names)
    theta = theta.clone().requires_grad_()
    (gradient,) = torch.autograd.grad(loss(theta), theta)
    return gradient


def dense_ggn(case: Case, names: list[str] | None = None) -> torch.Tensor:
    """sum_j J_j^T H_j J_j with dense Jacobians and output Hessians."""
    model = copy.deepcopy(case.model)
    named = dict(model.named_parameters())
    names = list(named) if names is None else names
    shapes = [named[name].shape for name in names]
    sizes = [named[name].numel() for name in names]
    theta = torch.cat([named[name].detach().reshape(-1) for name in names])
    total = sum(x.shape[0] for x, _ in case.batches)
    ggn = theta.new_zeros((theta.numel(), theta.numel()))
    for inputs, targets in case.batches:

        def outputs_of(t: torch.Tensor, inputs: torch.Tensor = inputs) -> torch.Tensor:
            parts = dict(
                zip(
                    names,
                    (p.view(s) for p, s in zip(t.split(sizes), shapes, strict=True)),
                    strict=True,
                )
            )
            return torch.func.functional_call(model, parts, (inputs,)).reshape(-1)

        outputs = outputs_of(theta).detach()
        jacobian = torch.autograd.functional.jacobian(outputs_of, theta)
        out_shape = torch.func.functional_call(model, dict(model.named_parameters()), (inputs,))
        weight = inputs.shape[0] / total

        def loss_of_outputs(
            o: torch.Tensor,
            targets: torch.Tensor = targets,
            weight: float = weight,
            shape: torch.Size = out_shape.shape,
        ) -> torch.Tensor:
            return weight * case.loss_fn(o.view(shape), targets)

        output_hessian = torch.autograd.functional.hessian(loss_of_outputs, outputs)
        ggn += jacobian.T @ output_hessian @ jacobian
    return ggn


def random_vectors(n: int, k: int | None = None, seed: int = 0) -> torch.Tensor:
    shape = (n,) if k is None else (n, k)
    return torch.randn(*shape, generator=_generator(seed), dtype=DTYPE)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-10) -> None:
    scale = max(float(expected.abs().max()), 1e-300)
    error = float((actual - expected).abs().max())
    assert error <= rtol * scale, f"max error {error:.3e} > {rtol:.0e} * {scale:.3e}"
