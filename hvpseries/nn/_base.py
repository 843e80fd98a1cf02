"""The base of the curvature operators of a neural-network loss: model, parameters, data.

:class:`CurvatureOperator` holds the model, the selected parameters and the data (as weighted
chunks) and composes the concerns that live in their own modules: the products
(:mod:`._products`), the loss and gradient (:mod:`._loss`), the parameter point and its
guards (:mod:`._guards`) and what is cached at a point (:mod:`._cache`).
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import array_api_compat.torch as xp_torch
import torch

from .._core._checks import check_positive_int
from .._operators._base import LinearOperator
from ._cache import PointCache
from ._data import Chunk, make_chunks
from ._distributed import (
    GroupSpec,
    agree_at_construction,
    global_sample_count,
    resolve_group,
    unwrap_model,
)
from ._guards import GuardsMixin, ModelStructure
from ._loss import LossFunction, LossMixin
from ._params import flatten_params, select_parameters, unflatten_params
from ._products import BLOCK_STRATEGIES, ProductsMixin, new_block_timings
from ._state import graph_nbytes, storage_pointers

__all__ = ["CurvatureOperator"]

# What _set_local_data replaces (restored on every rank when any rank fails to take new data).
_DATA_STATE = (
    "_splits_batches",
    "_chunks",
    "_data_tensors",
    "_n_samples",
    "_n_local_samples",
    "_tracked",
    "_cached",
)


class CurvatureOperator(
    ProductsMixin, LossMixin, GuardsMixin, LinearOperator, metaclass=abc.ABCMeta
):
    """Base of :class:`HessianOperator` and :class:`GGNOperator` (not public).

    Subclasses implement ``_build_chunk(chunk) -> state`` (under autograd and frozen buffers)
    and ``_apply_chunk(state, vectors, batched) -> list of tensors``; ``vectors`` holds one
    tensor per selected parameter, with a leading block dimension when ``batched``. The base
    class keeps the states of all chunks between products at one parameter point (unless
    ``microbatch_size`` asks for streaming), rebuilds them when the point changes, and
    converts between flat vectors and parameter-shaped tensors. A subclass whose matrix is
    positive semi-definite sets ``_tagged_psd = True``.

    Data parallelism lives here too: with a process group, chunk weights are shares of the
    global sample count, and the public products, gradient and loss are the local results
    summed over the ranks by one all-reduce each. Everything below the public methods stays
    rank-local, so that every rank issues the same collectives in the same order.
    """

    _cached = True  # whether chunk states are kept between products
    _tagged_psd: bool | None = None  # the psd tag of the subclass's matrix

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: LossFunction,
        data: Any,
        *,
        params: Iterable[str | torch.Tensor] | None = None,
        microbatch_size: int | None = None,
        check_deterministic: bool = False,
        process_group: GroupSpec = None,
        block_strategy: str = "auto",
    ) -> None:
        model, ddp_group = unwrap_model(model)
        self._group = resolve_group(process_group, ddp_group)
        with self._agreed_construction(model):
            names, tensors = select_parameters(model, params)
            if not callable(loss_fn):
                message = f"loss_fn must be callable as loss_fn(outputs, targets), got {loss_fn!r}"
                raise TypeError(message)
            check_positive_int(microbatch_size, "microbatch_size", allow_none=True)
            if not isinstance(check_deterministic, bool):
                message = f"check_deterministic must be True or False, got {check_deterministic!r}"
                raise TypeError(message)
            if not isinstance(block_strategy, str) or block_strategy not in BLOCK_STRATEGIES:
                message = (
                    f"block_strategy must be one of {BLOCK_STRATEGIES}, got {block_strategy!r}"
                )
                raise ValueError(message)
            self._block_setting = block_strategy
            self._attention_backend = "default"  # "math" once a fused kernel fails
            self._model = model
            self._loss_fn = loss_fn
            self._names = names
            self._params = tensors
            self._shapes = [tuple(t.shape) for t in tensors]
            self._numels = [t.numel() for t in tensors]
            self._microbatch_size = microbatch_size
            self._check_deterministic = check_deterministic
            self._structure = ModelStructure(model)
            self._model_tensors = [*model.parameters(), *model.buffers()]
            self._cache = PointCache()
            self._block_timings = new_block_timings()
            self._set_local_data(data)
        size = sum(self._numels)
        super().__init__(
            (size, size),
            self._params[0].dtype,
            xp=xp_torch,
            device=self._params[0].device,
            symmetric=True,
            psd=self._tagged_psd,
        )

    @contextlib.contextmanager
    def _agreed_construction(self, model: Any) -> Iterator[None]:
        """Set up the rank-local state in the body (no collectives); then agree over the group.

        With a group, every rank takes part in the agreement check, even one whose
        construction failed, so that all ranks raise instead of the others waiting in a
        collective: any exception (a user model's AssertionError or KeyError too), not only
        ours, is re-raised after the collective.
        """
        try:
            yield
        except Exception as error:
            if self._group is None:
                raise
            # Gather on the device the group expects (the model's, if it has any).
            tensors = [*model.parameters()][:1] if isinstance(model, torch.nn.Module) else []
            agree_at_construction(self._group, tensors or [torch.zeros(())], 0, error)
            raise
        if self._group is not None:
            total, splits = agree_at_construction(
                self._group, self._params, self._n_local_samples, None, splits=self._splits_batches
            )
            self._use_global_count(total, splits)

    # ------------------------------------------------------------------ public
    @property
    def model(self) -> torch.nn.Module:
        """The model whose loss is differentiated."""
        return self._model

    @property
    def param_names(self) -> tuple[str, ...]:
        """Names of the selected parameters, in the order of the flat vectors."""
        return tuple(self._names)

    @property
    def params(self) -> tuple[torch.Tensor, ...]:
        """The selected parameter tensors, in the order of the flat vectors."""
        return tuple(self._params)

    @property
    def block_strategy(self) -> str:
        """How blocks of vectors are applied: ``"auto"``, ``"batched"`` or ``"loop"``.

        ``"auto"`` times one batched call against a loop over the columns on the first blocks
        and keeps the faster; the two round differently, so results then depend on timings in
        the last bits. ``"batched"`` (which falls back to the loop for good where the batched
        call cannot run) and ``"loop"`` are bit-reproducible.
        """
        return self._block_setting

    @property
    def attention_backend(self) -> str:
        """The attention kernels of the curvature passes: ``"default"`` or ``"math"``.

        ``"math"`` once a pass failed in a fused scaled-dot-product attention kernel (they have
        no second derivatives): the passes then run under PyTorch's math backend, the same
        function from differentiable primitives (exact, slower). The loss and gradient stay
        those of the model on its default kernels.
        """
        return self._attention_backend

    def __repr__(self) -> str:
        text = super().__repr__()
        return f"{text[:-2]}, attention_backend={self._attention_backend!r})>"

    @property
    def n_samples(self) -> int:
        """The number of samples in the data (the loss is their mean), over all ranks."""
        return self._n_samples

    @property
    def n_local_samples(self) -> int:
        """The number of samples in this rank's data (:attr:`n_samples` without a group)."""
        return self._n_local_samples

    @property
    def process_group(self) -> Any:
        """The ``torch.distributed`` process group results are reduced over (``None``: local).

        A group of one process is reported as ``None``: there is nothing to reduce.
        """
        return self._group

    @property
    def cached_nbytes(self) -> int:
        """Bytes held by the cached linearisation (0 if nothing is cached).

        Counts the storage of tensors saved in the retained autograd graphs (or in the
        linearised functions) that the model and the data do not own. Computing it walks the
        graphs, so it costs a little time; it is meant for reporting.
        """
        if self._cache.states is None:
            return 0
        exclude = storage_pointers([*self._model_tensors, *self._data_tensors])
        return graph_nbytes(self._cache_roots(), exclude)

    def release(self) -> None:
        """Free the cached linearisation; the next product rebuilds it.

        Examples
        --------
        >>> import torch
        >>> from hvpseries.nn import HessianOperator
        >>> model = torch.nn.Linear(3, 1)
        >>> H = HessianOperator(model, torch.nn.MSELoss(), (torch.randn(8, 3), torch.randn(8, 1)))
        >>> _ = H @ torch.ones(4)
        >>> H.cached_nbytes > 0
        True
        >>> H.release()
        >>> H.cached_nbytes
        0
        """
        self._cache.clear()

    def update(self, data: Any = None) -> CurvatureOperator:
        """Move to the current parameters (and optionally new data); return ``self``.

        Products notice in-place parameter changes (``optimizer.step()``,
        ``load_state_dict``) and train/eval switches by themselves and rebuild; call
        ``update()`` to rebuild eagerly, or ``update(data)`` to evaluate the curvature on
        another batch (for example the next minibatch of a training loop). With a process
        group, ``update(data)`` is collective: every rank passes its new shard, and one small
        all-reduce sums the sample counts. If the new data fails on any rank, every rank raises
        (that rank its own error, the others a ``RuntimeError``) and keeps its previous data.
        """
        self.release()
        if data is not None:
            self._set_data(data)
        self._ensure_current()
        return self

    def _set_data(self, data: Any) -> None:
        if self._group is None:
            self._set_local_data(data)
            return
        # If any rank fails, every rank keeps its previous data (weighted by the previous
        # global count), so that the operators stay consistent across the ranks.
        previous = {name: getattr(self, name) for name in _DATA_STATE}
        error: BaseException | None = None
        try:
            self._set_local_data(data)
        except Exception as caught:  # re-raised after the collective
            error = caught
        n_local = 0 if error is not None else self._n_local_samples
        device = self._params[0].device
        try:
            total, splits = global_sample_count(
                n_local,
                self._group,
                device,
                failed=error is not None,
                splits=error is None and self._splits_batches,
            )
            if error is not None:
                raise error
        except BaseException:
            for name, value in previous.items():
                setattr(self, name, value)
            self.release()
            raise
        self._use_global_count(total, splits)

    def _use_global_count(self, total: int, splits: bool) -> None:
        """Weight the local chunks by their share of ``total`` samples over all ranks.

        ``splits``: whether ``microbatch_size`` splits a batch on any rank, so that the
        BatchNorm check of the products raises on every rank or on none.
        """
        self._splits_batches = splits
        self._chunks = [
            Chunk(chunk.inputs, chunk.targets, int(chunk.inputs.shape[0]) / total)
            for chunk in self._chunks
        ]
        self._n_samples = total

    def flatten(self, tensors: Mapping[str, torch.Tensor] | Iterable[torch.Tensor]) -> torch.Tensor:
        """Flatten parameter-shaped tensors (a dict keyed by :attr:`param_names`, or a list).

        Examples
        --------
        >>> import torch
        >>> from hvpseries.nn import HessianOperator
        >>> model = torch.nn.Linear(2, 1)
        >>> H = HessianOperator(model, torch.nn.MSELoss(), (torch.randn(4, 2), torch.randn(4, 1)))
        >>> H.flatten({"weight": torch.ones(1, 2), "bias": torch.zeros(1)})
        tensor([1., 1., 0.])
        """
        if isinstance(tensors, Mapping):
            missing = [name for name in self._names if name not in tensors]
            extra = [name for name in tensors if name not in self._names]
            if missing or extra:
                message = (
                    f"flatten needs exactly the keys {self._names}; missing {missing}, "
                    f"unexpected {extra}"
                )
                raise ValueError(message)
            items = [tensors[name] for name in self._names]
        else:
            items = list(tensors)
        shapes = [tuple(t.shape) for t in items]
        if shapes != self._shapes:
            message = f"flatten expects tensors of shapes {self._shapes}, got {shapes}"
            raise ValueError(message)
        return flatten_params(items)

    def unflatten(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split a flat vector into a dict of parameter-shaped views keyed by parameter name."""
        result = unflatten_params(vector, dict(zip(self._names, self._shapes, strict=True)))
        assert isinstance(result, dict)
        return result

    def _set_local_data(self, data: Any) -> None:
        """Take this rank's data (the whole data without a group); weights are local shares."""
        device, empty = self._params[0].device, self._group is not None
        chunks = make_chunks(data, self._microbatch_size, device, allow_empty=empty)
        whole = (
            make_chunks(data, None, device, allow_empty=empty) if self._microbatch_size else chunks
        )
        self._splits_batches = len(chunks) > len(whole)
        data_tensors = {}
        for chunk in chunks:
            for tensor in (chunk.inputs, chunk.targets):
                data_tensors.setdefault(id(tensor), tensor)
        if chunks:
            self._validate_first(chunks[0])
        self._chunks = chunks
        self._data_tensors = list(data_tensors.values())
        self._n_samples = sum(int(chunk.inputs.shape[0]) for chunk in chunks)
        self._n_local_samples = self._n_samples
        self._tracked = [*self._model_tensors, *self._data_tensors]
        self._cached = type(self)._cached and self._microbatch_size is None
        self._cache.clear()

    def _validate_first(self, chunk: Chunk) -> None:
        """Evaluate the loss once on the first chunk for early, clear errors."""
        with torch.no_grad(), self._structure.frozen_buffers():
            try:
                outputs = self._outputs(chunk.inputs)
            except (RuntimeError, ValueError, IndexError) as error:
                message = (
                    f"the model could not be evaluated on the data (inputs of shape "
                    f"{tuple(chunk.inputs.shape)}, dtype {chunk.inputs.dtype}): {error}; check "
                    "that the data has the shape, dtype and device the model expects"
                )
                raise ValueError(message) from error
            try:
                self._checked_loss(outputs, chunk.targets)
            except (RuntimeError, IndexError) as error:
                message = (
                    f"loss_fn could not be evaluated on the model's outputs and the targets "
                    f"(targets of shape {tuple(chunk.targets.shape)}, dtype "
                    f"{chunk.targets.dtype}): {error}"
                )
                raise ValueError(message) from error

    # ------------------------------------------------------------------ for subclasses
    @abc.abstractmethod
    def _build_chunk(self, chunk: Chunk) -> Any:
        """Build the reusable product state of one chunk of data (under autograd)."""

    @abc.abstractmethod
    def _apply_chunk(self, state: Any, vectors: list[torch.Tensor], batched: bool) -> list[Any]:
        """Apply the curvature of one chunk to per-parameter ``vectors``."""

    def _after_build(self) -> None:
        """Prepare derived data after the chunk states are built at a new point (a hook)."""

    def _replays_graph(self) -> bool:
        """Whether products only replay cached state (no forward pass of the model)."""
        return True

    def _cache_roots(self) -> list[Any]:
        return list(self._cache.states or [])

    def _handle_failure(self, error: BaseException) -> None:
        raise error
