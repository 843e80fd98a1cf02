"""Model state during curvature products: frozen buffers, change detection, cache memory.

Three things every curvature operator needs from the model it differentiates:

* **Buffers never change.** A BatchNorm layer in training mode normalises with the statistics
  of the batch and, as a side effect, updates its running statistics in place. Curvature
  products evaluate the model many times at one point; they must compute the same loss a
  training step computes (batch statistics) without touching the running statistics. While
  :func:`frozen_buffers` is active, training-mode BatchNorm layers have
  ``track_running_stats=False``, which in PyTorch's ``_BatchNorm.forward`` means exactly "batch
  statistics, no update, no ``num_batches_tracked`` increment". Any other buffer that the
  forward pass modifies in place is restored afterwards.
* **No stale results.** :func:`state_key` summarises the parameter point: the version counters
  of all parameters, buffers and data tensors (in-place updates such as ``optimizer.step()`` or
  ``load_state_dict`` bump them) and the train/eval flags of all modules.
* **Cache memory.** :func:`graph_nbytes` sums the storage held by a retained autograd graph or a
  linearised function, excluding storage owned by the model or the data.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm
from torch.overrides import TorchFunctionMode

__all__ = [
    "StableLossMode",
    "cuts_second_derivatives",
    "frozen_buffers",
    "graph_nbytes",
    "state_key",
    "storage_pointers",
]


@contextlib.contextmanager
def frozen_buffers(
    batch_norms: Sequence[_BatchNorm], other_buffers: Sequence[torch.Tensor]
) -> Iterator[None]:
    """Evaluate a model without changing its buffers (see the module docstring).

    ``batch_norms`` are the model's BatchNorm layers; ``other_buffers`` every buffer that does
    not belong to one of them (typically none).
    """
    switched = [bn for bn in batch_norms if bn.training and bn.track_running_stats]
    versions = [buffer._version for buffer in other_buffers]
    saved = [buffer.detach().clone() for buffer in other_buffers]
    for bn in switched:
        bn.track_running_stats = False
    try:
        yield
    finally:
        for bn in switched:
            bn.track_running_stats = True
        with torch.no_grad():
            for buffer, version, copy in zip(other_buffers, versions, saved, strict=True):
                if buffer._version != version:
                    buffer.copy_(copy)


class _PinnedKey(tuple):
    """A state key that keeps the storages of the tensors it names alive (see state_key)."""

    storages: list[Any]


def state_key(
    tensors: Sequence[torch.Tensor], modules: Sequence[torch.nn.Module], *, pin: bool = False
) -> tuple:
    """Return a value that changes whenever the differentiated function may have changed.

    A key names each tensor's data by its version counter and address. ``p.data = t`` keeps
    p's version counter, so an address must not be reused while a key naming it is kept:
    with ``pin=True`` (for keys that are stored) the key holds references to the storages,
    and the allocator cannot place new data at those addresses. Keys compare as tuples.
    """
    key = (
        tuple([(tensor._version, tensor.data_ptr()) for tensor in tensors]),
        tuple([module.training for module in modules]),
    )
    if not pin:
        return key
    pinned = _PinnedKey(key)
    pinned.storages = [tensor.untyped_storage() for tensor in tensors]
    return pinned


def storage_pointers(tensors: Iterable[torch.Tensor]) -> set[int]:
    """Return the storage addresses of ``tensors`` (memory the cache does not own)."""
    return {tensor.untyped_storage().data_ptr() for tensor in tensors}


def graph_nbytes(roots: Iterable[Any], exclude: set[int]) -> int:
    """Bytes of tensor storage reachable from ``roots`` and not in ``exclude``.

    ``roots`` may hold tensors (their autograd graphs are walked through the saved tensors of
    every node), callables (their closures are searched for tensors and modules holding
    tensors, which is where ``torch.func.linearize`` keeps its constants) and modules.
    """
    seen_storages: dict[int, int] = {}
    seen_nodes: set[int] = set()

    def add_tensor(tensor: torch.Tensor) -> None:
        """Count a tensor's storage and walk its autograd graph."""
        storage = tensor.untyped_storage()
        pointer = storage.data_ptr()
        if pointer and pointer not in exclude:
            seen_storages[pointer] = storage.nbytes()
        if tensor.grad_fn is not None:
            add_node(tensor.grad_fn)

    def add_value(value: Any) -> None:
        """Count a tensor, or the tensors of a (nested) tuple or list."""
        if isinstance(value, torch.Tensor):
            add_tensor(value)
        elif isinstance(value, (tuple, list)):
            for item in value:
                add_value(item)

    def add_node(node: Any) -> None:
        """Count the saved tensors of an autograd node and of every node below it."""
        stack = [node]
        while stack:
            current = stack.pop()
            if current is None or id(current) in seen_nodes:
                continue
            seen_nodes.add(id(current))
            for name in dir(current):
                if name.startswith("_saved_"):
                    # A node whose buffers were freed raises on access: nothing is held.
                    with contextlib.suppress(RuntimeError):
                        value = getattr(current, name)
                        if isinstance(value, torch.Tensor):
                            storage = value.untyped_storage()
                            pointer = storage.data_ptr()
                            if pointer and pointer not in exclude:
                                seen_storages[pointer] = storage.nbytes()
                        elif isinstance(value, (tuple, list)):
                            for item in value:
                                if isinstance(item, torch.Tensor):
                                    add_value(item.detach())
            stack.extend(next_node for next_node, _ in getattr(current, "next_functions", ()))

    def add_module(module: torch.nn.Module) -> None:
        """Count the tensors a module holds (its state and its attributes)."""
        for tensor in module.state_dict(keep_vars=True).values():
            add_value(tensor)
        for value in vars(module).values():
            add_value(value)

    def add_callable(function: Callable[..., Any]) -> None:
        """Count the tensors and modules in a function's closure."""
        for cell in getattr(function, "__closure__", None) or ():
            with contextlib.suppress(ValueError):  # an empty cell
                content = cell.cell_contents
                if isinstance(content, torch.nn.Module):
                    add_module(content)
                else:
                    add_value(content)

    for root in roots:
        if isinstance(root, torch.nn.Module):
            add_module(root)
        elif isinstance(root, (torch.Tensor, tuple, list)):
            add_value(root)
        elif callable(root):
            add_callable(root)
    return sum(seen_storages.values())


def cuts_second_derivatives(roots: list[torch.Tensor]) -> bool:
    """Return whether a graph holds torch's ``Error`` node (``once_differentiable``).

    Autograd prunes such a node when it lies on no path to the requested inputs, returning
    incomplete second derivatives instead of raising, so it is looked for up front.
    """
    stack = [root.grad_fn for root in roots]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if type(node).__name__ in ("Error", "DelayedError"):
            return True
        stack.extend(next_node for next_node, _ in node.next_functions)
    return False


class StableLossMode(TorchFunctionMode):
    """Compute ``F.mse_loss`` from elementary operations inside ``torch.func`` transforms.

    With torch 2.x, ``torch.func.jvp`` of the gradient of the fused ``aten::mse_loss`` kernel
    raises "ZeroTensors are immutable" (reduction ``"mean"``) and ``torch.func.linearize`` of it
    crashes the interpreter (every reduction). The same loss written as ``((x - y) ** 2).mean()``
    has correct forward-over-reverse derivatives, so this mode substitutes it. Calls it cannot
    translate exactly (a ``weight`` argument) go to the original function.
    """

    def __torch_function__(
        self,
        func: Any,
        types: Any,
        args: tuple = (),
        kwargs: dict | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if func is F.mse_loss:
            decomposed = _decomposed_mse_loss(*args, **kwargs)
            if decomposed is not None:
                return decomposed
        return func(*args, **kwargs)


def _decomposed_mse_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    weight: torch.Tensor | None = None,
) -> torch.Tensor | None:
    if weight is not None:
        return None
    if size_average is not None or reduce is not None:
        from torch.nn import _reduction

        reduction = _reduction.legacy_get_string(size_average, reduce, emit_warning=False)
    squared = (input - target) ** 2
    if reduction == "mean":
        return squared.mean()
    if reduction == "sum":
        return squared.sum()
    if reduction == "none":
        return squared
    return None
