"""Parameters as flat vectors: selection of trainable tensors, flattening and unflattening."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

__all__ = ["flatten_params", "select_parameters", "unflatten_params"]


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
    return torch.cat([t.detach().reshape(-1) for t in items])


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
    numels = [_numel(shape) for shape in shapes]
    if vector.ndim != 1 or vector.shape[0] != sum(numels):
        message = (
            f"unflatten_params needs a 1-D vector of length {sum(numels)} (the total size of "
            f"the {len(shapes)} target shapes), got shape {tuple(vector.shape)}"
        )
        raise ValueError(message)
    parts = [part.view(shape) for part, shape in zip(vector.split(numels), shapes, strict=True)]
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
