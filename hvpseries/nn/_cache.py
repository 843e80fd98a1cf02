"""What a curvature operator keeps between calls at one parameter point."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["PointCache", "Replay"]

# ``replay(x, batched)``: the product of a flat ``x`` (``batched``: of the rows of a ``(k, n)``
# block) in one call, or ``None`` where the general path must compute it.
Replay = Callable[[torch.Tensor, bool], torch.Tensor | None]

# (the point's key, the loss, the flat gradient)
_GradientEntry = tuple[tuple, torch.Tensor, torch.Tensor]


class PointCache:
    """The linearisation, replay and loss and gradient cached at one parameter point.

    Everything here is freed together by :meth:`clear` (``release()``, new data, replaced
    parameters); the linearisation alone by :meth:`clear_linearisation` before a rebuild at a
    new point. The loss and gradient entries carry the key of their point, so that they are
    only used at that point and may outlive a rebuild.

    Attributes
    ----------
    states : list or None
        The product state of every chunk of data at :attr:`key` (``None``: not built, or
        streamed with ``microbatch_size``).
    key : tuple or None
        The (pinned) state key of the point the states were built at; ``None``: no point.
    replay : callable or None
        The product of a flat vector at this point in one call, when a subclass can compute
        it so (set after a build; see :data:`Replay`). It holds the graph too.
    gradient : (key, loss, gradient) or None
        The global mean loss and its flat gradient (summed over the ranks of a group).
    local_gradient : (key, loss, gradient) or None
        This rank's share of them (the same without a group).
    """

    __slots__ = ("gradient", "key", "local_gradient", "replay", "states")

    def __init__(self) -> None:
        self.states: list[Any] | None = None
        self.key: tuple | None = None
        self.replay: Replay | None = None
        self.gradient: _GradientEntry | None = None
        self.local_gradient: _GradientEntry | None = None

    def clear(self) -> None:
        """Free everything: the linearisation, the replay and the loss and gradient."""
        self.clear_linearisation()
        self.gradient = None
        self.local_gradient = None

    def clear_linearisation(self) -> None:
        """Free the chunk states and the replay, and forget their point."""
        self.states = None
        self.key = None
        self.replay = None

    def gradient_at(self, key: tuple) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Return the cached global ``(loss, gradient)`` if of point ``key``, else ``None``."""
        return _entry_at(self.gradient, key)

    def local_gradient_at(self, key: tuple) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Return this rank's cached ``(loss, gradient)`` if of point ``key``, else ``None``."""
        return _entry_at(self.local_gradient, key)


def _entry_at(entry: _GradientEntry | None, key: tuple) -> tuple[torch.Tensor, torch.Tensor] | None:
    if entry is not None and entry[0] == key:
        return entry[1], entry[2]
    return None
