"""Parameters as flat vectors: selection of trainable tensors, flattening and unflattening.

:func:`flatten` and :func:`unflatten` are the one implementation of both directions in
:mod:`hvpseries.nn` and :mod:`hvpseries.optim`, unchecked for the products' fast path;
:func:`flatten_params` and :func:`unflatten_params` are the public, checked forms.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

__all__ = ["flatten", "flatten_params", "select_parameters", "unflatten", "unflatten_params"]


def _views(vector: torch.Tensor, shapes: Sequence[tuple[int, ...]]) -> list[torch.Tensor]:
    """Split a flat vector into views of the given shapes (one split, then one view each)."""
    numels = [_numel(shape) for shape in shapes]
    return [part.view(shape) for part, shape in zip(vector.split(numels), shapes, strict=True)]


def _concatenate(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def _views_like(vector: torch.Tensor, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return _views(vector, [tuple(t.shape) for t in like])


# One C++ call each instead of a Python loop over the tensors (the helpers torch's distributed
# data parallel uses); the Python versions are the fallback for a torch without them. On small
# models this is a measurable part of a product.
_flatten_dense = getattr(torch._C._nn, "flatten_dense_tensors", _concatenate)
_unflatten_dense = getattr(torch._C._nn, "unflatten_dense_tensors", _views_like)


def flatten(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenate tensors of one dtype and device into one flat vector, without checks.

    Parameters
    ----------
    tensors : sequence of Tensor
        The tensors, in order.

    Returns
    -------
    Tensor
        A 1-D tensor, in the autograd graph of ``tensors``. With a single contiguous tensor it
        may be a view of that tensor (copy it before writing to it).

    See Also
    --------
    flatten_params : The checked, detached, always-copying public form.
    """
    return _flatten_dense(tensors)


def unflatten(vector: torch.Tensor, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Split a flat vector into views shaped like the tensors ``like``, without checks.

    Parameters
    ----------
    vector : Tensor
        A 1-D tensor of length ``sum(t.numel() for t in like)``.
    like : sequence of Tensor
        Tensors whose shapes the pieces take.

    Returns
    -------
    list of Tensor
        Views of ``vector`` (a piece with no elements may be a new empty tensor).

    See Also
    --------
    unflatten_params : The checked public form, which also takes shapes and mappings.
    """
    return _unflatten_dense(vector, like)


def flatten_params(tensors: Mapping[str, torch.Tensor] | Iterable[torch.Tensor]) -> torch.Tensor:
    """Concatenate tensors into one flat vector (detached from any autograd graph).

    Parameters
    ----------
    tensors : mapping of str to Tensor, or iterable of Tensor
        The tensors in order (a mapping in its iteration order, such as
        ``dict(model.named_parameters())``). They must share one dtype and one device.

    Returns
    -------
    Tensor
        A new 1-D tensor of length ``sum(t.numel() for t in tensors)``.

    Raises
    ------
    ValueError
        If there are no tensors, or they live on different devices or have different dtypes.
    TypeError
        If an element is not a tensor.

    See Also
    --------
    unflatten_params : The inverse.

    Examples
    --------
    >>> import torch
    >>> from hvpseries.nn import flatten_params
    >>> flatten_params({"w": torch.ones(2, 2), "b": torch.zeros(2)})
    tensor([1., 1., 1., 1., 0., 0.])
    """
    items = list(tensors.values() if isinstance(tensors, Mapping) else tensors)
    _check_tensors(items, "flatten_params")
    flat = flatten([t.detach() for t in items])
    # flatten may return a view of a lone tensor; this function promises a new one.
    return flat.clone() if len(items) == 1 else flat


def unflatten_params(
    vector: torch.Tensor,
    like: Mapping[str, Any] | Sequence[Any],
) -> dict[str, torch.Tensor] | list[torch.Tensor]:
    """Split a flat vector into tensors shaped like ``like`` (views, no copy).

    Parameters
    ----------
    vector : Tensor
        A 1-D tensor whose length is the total number of elements of ``like``.
    like : mapping of str to (Tensor or shape), or sequence of (Tensor or shape)
        The target shapes, as tensors (their shapes are used) or as shapes.

    Returns
    -------
    dict of str to Tensor, or list of Tensor
        A dict with the keys of ``like`` if it is a mapping, a list otherwise. The tensors are
        views of ``vector``: writing to them writes to ``vector``.

    Raises
    ------
    ValueError
        If ``vector`` is not 1-D or its length does not match.

    Examples
    --------
    >>> import torch
    >>> from hvpseries.nn import unflatten_params
    >>> parts = unflatten_params(torch.arange(6.0), {"w": (2, 2), "b": (2,)})
    >>> parts["w"]
    tensor([[0., 1.],
            [2., 3.]])
    >>> parts["b"]
    tensor([4., 5.])
    """
    if not isinstance(vector, torch.Tensor):
        message = f"unflatten_params expects a torch.Tensor vector, got {type(vector).__name__}"
        raise TypeError(message)
    keys = list(like) if isinstance(like, Mapping) else None
    targets = list(like.values()) if isinstance(like, Mapping) else list(like)
    shapes = [tuple(t.shape) if isinstance(t, torch.Tensor) else tuple(t) for t in targets]
    size = sum(_numel(shape) for shape in shapes)
    if vector.ndim != 1 or vector.shape[0] != size:
        message = (
            f"unflatten_params needs a 1-D vector of length {size} (the total size of "
            f"the {len(shapes)} target shapes), got shape {tuple(vector.shape)}"
        )
        raise ValueError(message)
    parts = _views(vector, shapes)
    if keys is None:
        return parts
    return dict(zip(keys, parts, strict=True))


def select_parameters(
    model: torch.nn.Module, params: Iterable[str | torch.Tensor] | None
) -> tuple[list[str], list[torch.Tensor]]:
    """Return ``(names, tensors)`` of the parameters an operator differentiates with respect to.

    ``params=None`` selects every parameter with ``requires_grad=True`` in the order of
    ``model.named_parameters()``; otherwise the given names or parameter tensors in the given
    order. Shared (tied) parameters appear once.
    """
    if not isinstance(model, torch.nn.Module):
        message = f"model must be a torch.nn.Module, got {type(model).__name__}"
        raise TypeError(message)
    named = dict(model.named_parameters())
    if params is None:
        names = [name for name, tensor in named.items() if tensor.requires_grad]
        if not names:
            message = (
                f"the model has no trainable parameters ({len(named)} parameters, none with "
                "requires_grad=True); unfreeze some with p.requires_grad_(True) or pass params="
            )
            raise ValueError(message)
    else:
        if isinstance(params, (str, torch.Tensor)):
            message = (
                "params must be an iterable of parameter names or tensors, e.g. "
                "params=['0.weight'] or params=[model[0].weight]"
            )
            raise TypeError(message)
        by_identity = {id(tensor): name for name, tensor in named.items()}
        names = []
        for item in params:
            if isinstance(item, str):
                if item not in named:
                    message = (
                        f"the model has no parameter named {item!r}; its parameters are "
                        f"{list(named)}"
                    )
                    raise ValueError(message)
                names.append(item)
            elif isinstance(item, torch.Tensor):
                if id(item) not in by_identity:
                    message = (
                        f"a tensor of shape {tuple(item.shape)} in params is not a parameter of "
                        "the model; pass the model's own parameters (or their names)"
                    )
                    raise ValueError(message)
                names.append(by_identity[id(item)])
            else:
                message = f"params must hold names or tensors, got {type(item).__name__}"
                raise TypeError(message)
        if not names:
            message = "params is empty: select at least one parameter (or pass params=None)"
            raise ValueError(message)
        if len(set(names)) != len(names):
            repeated = sorted({name for name in names if names.count(name) > 1})
            message = f"params selects some parameters twice: {repeated}"
            raise ValueError(message)
        frozen = [name for name in names if not named[name].requires_grad]
        if frozen:
            message = (
                f"the selected parameters {frozen} have requires_grad=False; unfreeze them with "
                "requires_grad_(True) or leave them out of params"
            )
            raise ValueError(message)
    tensors = [named[name] for name in names]
    _check_tensors(tensors, "the selected parameters", names)
    return names, tensors


def _check_tensors(tensors: list[Any], what: str, names: list[str] | None = None) -> None:
    if not tensors:
        message = f"{what}: nothing to flatten (no tensors given)"
        raise ValueError(message)
    for tensor in tensors:
        if not isinstance(tensor, torch.Tensor):
            message = f"{what} expects tensors, got {type(tensor).__name__}"
            raise TypeError(message)
    labels = names if names is not None else [f"#{i}" for i in range(len(tensors))]
    first = tensors[0]
    for label, tensor in zip(labels, tensors, strict=True):
        if tensor.dtype != first.dtype or tensor.device != first.device:
            message = (
                f"{what} must share one dtype and device: {labels[0]} is {first.dtype} on "
                f"{first.device}, {label} is {tensor.dtype} on {tensor.device}; convert the "
                "model with model.to(dtype, device) or select parameters of one kind"
            )
            raise ValueError(message)
    if not first.is_floating_point():
        message = f"{what} must be floating point, got {first.dtype}"
        raise TypeError(message)


def _numel(shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= int(size)
    return count
