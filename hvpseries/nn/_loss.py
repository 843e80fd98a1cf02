"""The mean loss of a curvature operator's data and its gradient, by plain autograd."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch

from ._cache import PointCache
from ._data import Chunk
from ._data import weighted as _weighted
from ._distributed import all_reduce_sum
from ._guards import ModelStructure

__all__ = ["LossFunction", "LossMixin"]

LossFunction = Callable[[Any, torch.Tensor], torch.Tensor]


class LossMixin:
    """The loss and gradient of :class:`~hvpseries.nn._base.CurvatureOperator`.

    Both are cached per parameter point in the operator's :class:`PointCache`. Uses the
    operator's attributes annotated below and ``_state`` and ``_follow_replaced_parameters``
    of :class:`~hvpseries.nn._guards.GuardsMixin`.
    """

    _model: torch.nn.Module
    _loss_fn: LossFunction
    _params: list[torch.Tensor]
    _numels: list[int]
    _chunks: list[Chunk]
    _structure: ModelStructure
    _cache: PointCache
    _group: Any

    def loss_and_gradient(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the mean loss over the data and its gradient as a flat vector.

        Both are detached, at the current parameters; the running statistics of BatchNorm
        layers are not updated. With a process group, both are of the global mean loss (over
        the samples of all ranks), reduced in one all-reduce, identical on every rank.
        """
        self._follow_replaced_parameters()
        cached = self._cache.gradient_at(self._state())
        if cached is not None:
            return cached
        loss, gradient = self._local_loss_and_gradient()
        if self._group is not None:
            # One collective for both: the loss travels as an extra element of the gradient.
            buffer = gradient.new_empty(gradient.shape[0] + 1)
            buffer[0] = loss
            buffer[1:] = gradient
            all_reduce_sum(buffer, self._group)
            loss, gradient = buffer[0].to(loss.dtype), buffer[1:]
        self._cache.gradient = (self._state(pin=True), loss, gradient)
        return loss, gradient

    def gradient(self) -> torch.Tensor:
        """Return the gradient of the mean loss over the data, as a flat vector."""
        return self.loss_and_gradient()[1]

    def loss(self) -> torch.Tensor:
        """Return the mean loss over the data at the current parameters, without its gradient.

        Detached, and the value of ``loss_and_gradient()[0]`` (returned as it is when that is
        cached at this point). Otherwise one forward pass per batch, without the backward
        pass of :meth:`loss_and_gradient` (an optimizer's loss after a step needs only this).
        The running statistics of BatchNorm layers are not updated. With a process group, the
        global mean loss in one all-reduce of one number, identical on every rank.

        Examples
        --------
        >>> import torch
        >>> from hvpseries.nn import HessianOperator
        >>> model = torch.nn.Linear(3, 1).double()
        >>> data = (torch.ones(4, 3, dtype=torch.float64), torch.zeros(4, 1, dtype=torch.float64))
        >>> H = HessianOperator(model, torch.nn.MSELoss(), data)
        >>> bool(H.loss() == H.loss_and_gradient()[0])
        True
        """
        self._follow_replaced_parameters()
        key = self._state()
        cached = self._cache.gradient_at(key)
        if cached is not None:
            return cached[0]
        local = self._cache.local_gradient_at(key)
        loss = local[0] if local is not None else self._fresh_loss()
        if self._group is not None:
            loss = all_reduce_sum(loss.reshape(1).clone(), self._group)[0]
        return loss

    def _local_loss_and_gradient(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return this rank's share of the loss and gradient (all of them without a group)."""
        cached = self._cache.local_gradient_at(self._state())
        if cached is not None:
            return cached
        loss, gradient = self._fresh_loss_and_gradient()
        self._cache.local_gradient = (self._state(pin=True), loss, gradient)
        return loss, gradient

    def _fresh_loss_and_gradient(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and flat gradient from plain first-order autograd (works for every model)."""
        if not self._chunks:  # an empty shard of data-parallel data contributes zero
            zero = self._params[0].new_zeros(())
            return zero, self._params[0].new_zeros(sum(self._numels))
        loss_total = None
        gradient_total = None
        for chunk in self._chunks:
            with self._evaluation():
                loss = _weighted(
                    chunk, self._checked_loss(self._outputs(chunk.inputs), chunk.targets)
                )
                grads = torch.autograd.grad(
                    loss, self._params, allow_unused=True, materialize_grads=True
                )
            flat = torch.cat([g.reshape(-1) for g in grads])
            loss = loss.detach()
            loss_total = loss if loss_total is None else loss_total + loss
            gradient_total = flat if gradient_total is None else gradient_total + flat
        assert loss_total is not None and gradient_total is not None
        return loss_total, gradient_total

    def _fresh_loss(self) -> torch.Tensor:
        """Return this rank's share of the loss, from forward passes only.

        The forward passes run with autograd on, as in :meth:`_fresh_loss_and_gradient`, and
        the sum is formed in the same order: modules with an inference fast path
        (``nn.MultiheadAttention``, ``nn.TransformerEncoder`` in eval mode) compute another
        value under ``torch.no_grad()``.
        """
        if not self._chunks:  # an empty shard of data-parallel data contributes zero
            return self._params[0].new_zeros(())
        total = None
        for chunk in self._chunks:
            with self._evaluation():
                outputs = self._outputs(chunk.inputs)
                loss = _weighted(chunk, self._checked_loss(outputs, chunk.targets)).detach()
            total = loss if total is None else total + loss
        return total

    @contextlib.contextmanager
    def _evaluation(self) -> Iterator[None]:
        """Autograd on (also inside ``torch.no_grad()``), buffers frozen."""
        with torch.enable_grad(), self._structure.frozen_buffers():
            yield

    def _outputs(self, inputs: torch.Tensor) -> Any:
        return self._model(inputs)

    def _checked_loss(self, outputs: Any, targets: torch.Tensor) -> torch.Tensor:
        loss = self._loss_fn(outputs, targets)
        if not isinstance(loss, torch.Tensor):
            message = f"loss_fn must return a tensor, got {type(loss).__name__}"
            raise TypeError(message)
        if loss.numel() != 1:
            message = (
                f"loss_fn must return a scalar (the mean loss over the batch), got a tensor of "
                f"shape {tuple(loss.shape)}; use reduction='mean' or reduce it with .mean()"
            )
            raise ValueError(message)
        return loss.reshape(())
