"""Keeping a curvature operator at the model's current parameter point.

Before a product, the operator checks that what it cached is still the function of the
model: in-place changes of parameters, buffers or data and train/eval switches change the
state key (:func:`~hvpseries.nn._state.state_key`); parameters, buffers or modules replaced
by new objects (``load_state_dict(assign=True)``, ``model[1] = torch.nn.Sigmoid()``) are
noticed by :class:`ModelStructure`. At a new point the operator refuses microbatches of
BatchNorm layers in train mode, rebuilds its linearisation and, on request, checks that the
loss is deterministic.
"""

from __future__ import annotations

import contextlib
import operator
from typing import Any

import torch
from torch.nn.modules.batchnorm import _BatchNorm

from ._cache import PointCache
from ._distributed import ranks_with_flag
from ._errors import NondeterministicLossError
from ._state import frozen_buffers, state_key

__all__ = ["GuardsMixin", "ModelStructure"]


class ModelStructure:
    """The module tree of a model and what each module holds, recorded at construction.

    Parameters
    ----------
    model : torch.nn.Module
        The model to watch.

    Attributes
    ----------
    modules : list of torch.nn.Module
        ``model.modules()``, whose train/eval flags are part of the state key.
    batch_norms : list of torch.nn.Module
        The BatchNorm layers among them.
    other_buffers : list of Tensor
        Every buffer that does not belong to one of the BatchNorm layers.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.modules = list(model.modules())
        self.batch_norms = [m for m in self.modules if isinstance(m, _BatchNorm)]
        owned = {id(b) for bn in self.batch_norms for b in bn.buffers(recurse=False)}
        self.other_buffers = [b for b in model.buffers() if id(b) not in owned]
        self._members = self._current_members()

    def _current_members(self) -> list[Any]:
        # Every parameter, buffer and child module of every module, in one flat list.
        return [
            member
            for module in self.modules
            for members in (module._parameters, module._buffers, module._modules)
            for member in members.values()
        ]

    def unchanged(self) -> bool:
        """Whether no module attribute was replaced since construction.

        The tree below the model is unchanged if every known module still holds the same
        children, parameters and buffers (compared by identity), so this is the check that
        ``model.parameters()`` and ``model.buffers()`` return the same tensors, without
        walking the tree with generators on every product.
        """
        current = self._current_members()
        saved = self._members
        return len(current) == len(saved) and all(map(operator.is_, current, saved))

    def frozen_buffers(self) -> contextlib.AbstractContextManager[None]:
        """Return a context in which evaluating the model changes none of its buffers."""
        return frozen_buffers(self.batch_norms, self.other_buffers)

    def batch_norm_in_training(self) -> bool:
        """Whether a BatchNorm layer of the model is in train mode."""
        return any(bn.training for bn in self.batch_norms)


def _disagreement(
    first: tuple[torch.Tensor, torch.Tensor],
    second: tuple[torch.Tensor, torch.Tensor],
    dtype: torch.dtype,
) -> str | None:
    """Say how two evaluations of ``(loss, gradient)`` differ beyond rounding, or ``None``."""
    rtol = float(torch.finfo(dtype).eps) ** 0.5
    for what, a, b in (("loss", first[0], second[0]), ("gradient", first[1], second[1])):
        scale = max(float(torch.linalg.vector_norm(a)), float(torch.finfo(dtype).tiny))
        difference = float(torch.linalg.vector_norm(a - b))
        if not difference <= rtol * scale:
            return (
                f"the {what} differs between two evaluations at the same parameters "
                f"(relative difference {difference / scale:.2e}): the model or the loss is "
                "random (Dropout or another random layer in training mode?), so curvature "
                "products would not be reproducible; call model.eval() to disable Dropout, "
                "or make the randomness fixed (a seeded torch.Generator reset per call)"
            )
    return None


class GuardsMixin:
    """The parameter point of :class:`~hvpseries.nn._base.CurvatureOperator`.

    Uses the operator's attributes annotated below, ``release()``, ``dtype`` and ``_device``,
    the evaluation and loss of :class:`~hvpseries.nn._loss.LossMixin` and the subclass hooks
    ``_build_chunk`` and ``_after_build``.
    """

    _model: torch.nn.Module
    _names: list[str]
    _params: list[torch.Tensor]
    _shapes: list[tuple[int, ...]]
    _model_tensors: list[torch.Tensor]
    _data_tensors: list[torch.Tensor]
    _tracked: list[torch.Tensor]
    _structure: ModelStructure
    _cache: PointCache
    _cached: bool
    _chunks: list[Any]
    _splits_batches: bool
    _check_deterministic: bool
    _group: Any

    def _state(self, *, pin: bool = False) -> tuple:
        # pin: a key to be stored, which keeps the addresses it names from being reused.
        return state_key(self._tracked, self._structure.modules, pin=pin)

    def _is_current(self) -> bool:
        """Whether the cached states are those of the current point (no rebuild needed)."""
        key = self._cache.key
        return key is not None and self._structure.unchanged() and self._state() == key

    def _ensure_current(self) -> None:
        """Rebuild the cached linearisation if the point changed since it was built."""
        self._follow_replaced_parameters()
        cache = self._cache
        key = self._state()
        if key == cache.key:
            return
        self._check_microbatching()
        cache.clear_linearisation()
        if self._cached:
            with self._curvature_pass():
                states = [self._build_chunk(chunk) for chunk in self._chunks]
            cache.states = states
        self._after_build()
        cache.key = self._state(pin=True)
        if self._check_deterministic:
            self._verify_deterministic()

    def _follow_replaced_parameters(self) -> None:
        """Pick up parameters or buffers replaced by new tensors (``load_state_dict(assign=True)``).

        The operator differentiates with respect to the model's parameters *by name*: when a
        module attribute now holds another tensor, the selection is looked up again.
        """
        if self._structure.unchanged():
            return
        # Any replaced attribute, also a parameter-free module (a Dropout swapped for an
        # Identity), may change the function: look the parameters up again and rebuild.
        current = [*self._model.parameters(), *self._model.buffers()]
        named = dict(self._model.named_parameters())
        missing = [name for name in self._names if name not in named]
        if missing:
            message = (
                f"the model no longer has the parameters {missing} this operator differentiates"
            )
            raise ValueError(message)
        tensors = [named[name] for name in self._names]
        shapes = [tuple(t.shape) for t in tensors]
        if shapes != self._shapes:
            message = (
                f"the model's parameters changed shape from {self._shapes} to {shapes}; build a "
                "new operator"
            )
            raise ValueError(message)
        self._params = tensors
        self._structure = ModelStructure(self._model)  # only now: an invalid model raises again
        self._model_tensors = current
        self._tracked = [*self._model_tensors, *self._data_tensors]
        self.release()

    def _check_microbatching(self) -> None:
        if self._splits_batches and self._structure.batch_norm_in_training():
            message = (
                "microbatch_size splits the batches, but the model has BatchNorm layers in train "
                "mode: each piece would be normalised with its own statistics, a different loss. "
                "Call model.eval(), or do not split (microbatch_size=None or >= the batch size)"
            )
            raise ValueError(message)

    def _verify_deterministic(self) -> None:
        """Evaluate this rank's loss and gradient twice; raise if they differ.

        With a process group the verdicts are all-reduced (one number per rank), so that when
        the check fails on some ranks every rank raises instead of the others waiting in the
        product's all-reduce.
        """
        first = self._local_loss_and_gradient()
        second = self._fresh_loss_and_gradient()
        message = _disagreement(first, second, self.dtype)
        failing = []
        if self._group is not None:
            failing = ranks_with_flag(message is not None, self._group, self._device)
        if message is None and not failing:
            return
        self.release()
        if message is None:
            message = (
                f"the loss or gradient differs between two evaluations at the same parameters "
                f"on rank(s) {failing} of the process group (see the error raised there); "
                "every rank stops here instead of waiting in a collective"
            )
        raise NondeterministicLossError(message)
