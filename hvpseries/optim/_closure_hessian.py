"""The loss, gradient and Hessian operator of a closure's autograd graph, on flat vectors."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from .._operators._function import FunctionOperator

__all__ = ["evaluate_closure", "gradient_of_closure", "hessian_of_closure"]


_PATCH_LOCK = threading.RLock()
_PATCH_DEPTH = 0
_ORIGINAL_BACKWARD = torch.autograd.backward


def _backward_retaining_graph(tensors, grad_tensors=None, retain_graph=None, *args, **kwargs):
    return _ORIGINAL_BACKWARD(tensors, grad_tensors, True, *args, **kwargs)


@contextlib.contextmanager
def _backward_keeps_graph() -> Iterator[None]:
    """Make ``backward`` inside a closure keep the graph, so HVPs can reuse it.

    ``torch.optim`` closures conventionally call ``loss.backward()`` (which goes through
    :func:`torch.autograd.backward`) and that frees the graph the optimizer needs for its own
    gradient and Hessian-vector products. While a closure runs, ``torch.autograd.backward``
    is replaced by a version that retains the graph; the replacement is reference-counted
    under a lock, so nested and concurrent steps restore the original exactly once. Other
    threads calling ``backward`` during a step also keep their graphs until they drop them.
    """
    global _PATCH_DEPTH
    with _PATCH_LOCK:
        if _PATCH_DEPTH == 0:
            torch.autograd.backward = _backward_retaining_graph
        _PATCH_DEPTH += 1
    try:
        yield
    finally:
        with _PATCH_LOCK:
            _PATCH_DEPTH -= 1
            if _PATCH_DEPTH == 0:
                torch.autograd.backward = _ORIGINAL_BACKWARD


def evaluate_closure(closure: Callable[[], Any]) -> torch.Tensor:
    """Call ``closure`` with gradients enabled and a graph that survives ``backward``."""
    with torch.enable_grad(), _backward_keeps_graph():
        loss = closure()
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            message = (
                "the closure must return the loss as a scalar torch tensor, got "
                f"{type(loss).__name__}{tuple(getattr(loss, 'shape', ()))}"
            )
            raise TypeError(message)
        return loss.reshape(())


def _grads_or_zeros(
    grads: Sequence[torch.Tensor | None], params: Sequence[torch.Tensor], batch: int | None
) -> torch.Tensor:
    pieces = []
    for g, p in zip(grads, params, strict=True):
        if g is None:
            shape = (p.numel(),) if batch is None else (batch, p.numel())
            pieces.append(torch.zeros(shape, dtype=p.dtype, device=p.device))
        else:
            pieces.append(g.reshape(-1) if batch is None else g.reshape(batch, -1))
    return torch.cat(pieces, dim=-1)


def _check_differentiable(loss: torch.Tensor) -> None:
    if not loss.requires_grad:
        message = (
            "the closure's loss does not depend on the optimizer's parameters (or was computed "
            "under torch.no_grad()); return a loss computed from them"
        )
        raise ValueError(message)


def gradient_of_closure(loss: torch.Tensor, params: Sequence[torch.Tensor]) -> torch.Tensor:
    """Return the flat gradient of ``loss`` at ``params``, without a graph for products.

    For a step that applies no Hessian: one plain backward pass.
    """
    _check_differentiable(loss)
    with torch.enable_grad():
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    return _grads_or_zeros(grads, params, None)


def hessian_of_closure(
    loss: torch.Tensor, params: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, FunctionOperator]:
    """Return the flat gradient and the Hessian operator of ``loss`` at ``params``.

    The gradient graph is built once (``create_graph=True``) and every product reuses it
    (double backward with ``retain_graph=True``). A product differentiates the gradient's
    pieces, one per parameter, against the matching views of the flat vector: differentiating
    their concatenation instead puts a cat node into every backward pass (about 3% of a
    product for an MLP of 85k parameters). A block of vectors is applied in one batched
    backward pass (``is_grads_batched``), falling back to a loop where that cannot run.
    """
    _check_differentiable(loss)
    # The pieces of the gradient that depend on the parameters, flattened (in the graph, so
    # one split of the vector gives their weights); a piece that does not, or a parameter the
    # loss does not use, contributes zero to every product.
    with torch.enable_grad():  # step() runs under no_grad; the gradient's graph is needed
        grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
        used = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
        pieces = [grads[i].reshape(-1) for i in used]
    flat_gradient = _grads_or_zeros([g if g is None else g.detach() for g in grads], params, None)
    sizes = [p.numel() for p in params]
    every = len(used) == len(params)
    n = flat_gradient.numel()
    batched = {"works": True}

    def products_of(x: torch.Tensor, batch: int | None) -> torch.Tensor:
        """Return ``H x`` (``batch``: ``x`` holds that many vectors as rows)."""
        parts = torch.split(x, sizes, dim=-1)  # views, one call
        products = torch.autograd.grad(
            pieces,
            params,
            grad_outputs=parts if every else [parts[i] for i in used],
            retain_graph=True,
            allow_unused=True,
            is_grads_batched=batch is not None,
        )
        return _grads_or_zeros(products, params, batch)

    def matvec(v: torch.Tensor) -> torch.Tensor:
        """Return ``H v``."""
        if not pieces:  # a loss linear in params: zero Hessian
            return torch.zeros_like(v)
        return products_of(v, None)

    def matmat(V: torch.Tensor) -> torch.Tensor:
        """Return ``H V``, in one batched pass where it can run."""
        if not pieces:
            return torch.zeros_like(V)
        k = V.shape[1]
        if batched["works"]:
            try:
                return products_of(V.T.contiguous(), k).T
            except RuntimeError:  # an operation without a batching rule: use a loop
                batched["works"] = False
        return torch.stack([matvec(V[:, j]) for j in range(k)], dim=1)

    operator = FunctionOperator(
        matvec,
        (n, n),
        dtype=flat_gradient.dtype,
        like=flat_gradient,
        matmat=matmat,
        symmetric=True,
    )
    return flat_gradient, operator
