"""The training objective of a dataset: its loss, its tensors, batch closures and evaluation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._datasets import Dataset
from ._dependencies import require

__all__ = ["as_tensors", "batch_closure", "evaluate", "loss_function"]


def loss_function(task: str) -> Callable[[Any, Any], Any]:
    """Return the loss of ``task``: cross-entropy for classification, else mean squared error."""
    torch = require("torch", "torch", "training")
    if task == "classification":
        return torch.nn.functional.cross_entropy
    return torch.nn.functional.mse_loss


def evaluate(model: Any, x: Any, y: Any, task: str) -> tuple[float, float | None]:
    """Return the loss of ``model`` on ``(x, y)`` and its accuracy (None for regression)."""
    torch = require("torch", "torch", "training")
    with torch.no_grad():
        output = model(x)
        loss = float(loss_function(task)(output, y))
        accuracy = None
        if task == "classification":
            accuracy = float((output.argmax(dim=1) == y).to(torch.float64).mean())
    return loss, accuracy


def as_tensors(dataset: Dataset, dtype: Any, device: Any) -> tuple[Any, Any, Any, Any]:
    """Return ``x_train, y_train, x_test, y_test`` as tensors (integer class labels)."""
    torch = require("torch", "torch", "training")
    target_dtype = torch.int64 if dataset.task == "classification" else dtype
    return (
        torch.as_tensor(dataset.x_train, dtype=dtype, device=device),
        torch.as_tensor(dataset.y_train, dtype=target_dtype, device=device),
        torch.as_tensor(dataset.x_test, dtype=dtype, device=device),
        torch.as_tensor(dataset.y_test, dtype=target_dtype, device=device),
    )


def batch_closure(
    model: Any, loss_fn: Any, optimizer: Any, x: Any, y: Any, first_order: bool
) -> Callable[[], Any]:
    """Return the closure ``optimizer.step`` calls: it recomputes the batch loss.

    For first-order optimizers it also computes the gradient; the SFN optimizers differentiate
    the returned loss themselves.
    """
    if first_order:

        def closure() -> Any:
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            return loss

        return closure

    def sfn_closure() -> Any:
        return loss_fn(model(x), y)

    return sfn_closure
