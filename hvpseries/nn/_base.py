"""The shared machinery of the curvature operators of a neural-network loss."""

from __future__ import annotations

import abc
import contextlib
import operator
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import array_api_compat.torch as xp_torch
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from .._core._checks import check_positive_int
from .._operators._base import LinearOperator
from ._data import Chunk, make_chunks
from ._data import weighted as _weighted
from ._distributed import (
    GroupSpec,
    agree_at_construction,
    all_reduce_sum,
    global_sample_count,
    ranks_with_flag,
    resolve_group,
    unwrap_model,
)
from ._params import flatten_params, select_parameters, unflatten_params
from ._state import frozen_buffers, graph_nbytes, state_key, storage_pointers

__all__ = ["CurvatureOperator", "ModeFallbackWarning", "NondeterministicLossError"]

LossFunction = Callable[[Any, torch.Tensor], torch.Tensor]

# torch warns when vmap runs an operator without a batching rule (it then loops internally);
# that is the loop this package would fall back to anyway.
_VMAP_SLOW_PATH = r".*(performance drop|batching rule).*"

# Blocks timed per strategy (batched call, column loop) before the faster is kept; the minimum
# over the samples discounts the warm-up of the first call and noise from other processes.
_EXPLORE = 3
_BLOCK_STRATEGIES = ("auto", "batched", "loop")
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


def _python_flatten(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def _python_unflatten(flat: torch.Tensor, like: list[torch.Tensor]) -> list[torch.Tensor]:
    sizes = [t.numel() for t in like]
    return [p.view(t.shape) for p, t in zip(flat.split_with_sizes(sizes), like, strict=True)]


# One C++ call each instead of a Python loop over parameters (the helpers torch's distributed
# data parallel uses); the Python versions are the fallback for a torch without them. On small
# models this is a measurable part of a product.
_flatten = getattr(torch._C._nn, "flatten_dense_tensors", _python_flatten)
_unflatten = getattr(torch._C._nn, "unflatten_dense_tensors", _python_unflatten)


class ModeFallbackWarning(RuntimeWarning):
    """A curvature product mode failed on this model and another mode took over.

    Issued once per operator; the mode in use is then ``operator.mode``.

    Examples
    --------
    >>> from hvpseries.nn import ModeFallbackWarning
    >>> issubclass(ModeFallbackWarning, RuntimeWarning)
    True
    """


class NondeterministicLossError(RuntimeError):
    """Two evaluations of the loss at the same parameters disagreed (``check_deterministic``).

    Usually Dropout or another random layer in train mode: call ``model.eval()`` or fix the
    randomness.

    Examples
    --------
    >>> import torch
    >>> from hvpseries.nn import HessianOperator, NondeterministicLossError
    >>> layers = [torch.nn.Linear(4, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 1)]
    >>> model = torch.nn.Sequential(*layers)
    >>> data = (torch.randn(16, 4), torch.randn(16, 1))
    >>> H = HessianOperator(model, torch.nn.MSELoss(), data, check_deterministic=True)
    >>> try:
    ...     H @ torch.ones(H.shape[0])
    ... except NondeterministicLossError:
    ...     print("caught")
    caught
    """


class CurvatureOperator(LinearOperator, metaclass=abc.ABCMeta):
    """Base of :class:`HessianOperator` and :class:`GGNOperator` (not public).

    Subclasses implement ``_build_chunk(chunk) -> state`` (under autograd and frozen buffers)
    and ``_apply_chunk(state, vectors, batched) -> list of tensors``; ``vectors`` holds one
    tensor per selected parameter, with a leading block dimension when ``batched``. The base
    class keeps the states of all chunks between products at one parameter point (unless
    ``microbatch_size`` asks for streaming), rebuilds them when the point changes, and
    converts between flat vectors and parameter-shaped tensors.

    Data parallelism lives here too: with a process group, chunk weights are shares of the
    global sample count, and the public products, gradient and loss are the local results
    summed over the ranks by one all-reduce each. Everything below the public methods stays
    rank-local, so that every rank issues the same collectives in the same order.
    """

    _cached = True  # whether chunk states are kept between products

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: LossFunction,
        data: Any,
        *,
        params: Iterable[str | torch.Tensor] | None,
        microbatch_size: int | None,
        check_deterministic: bool,
        psd: bool | None,
        process_group: GroupSpec = None,
        block_strategy: str = "auto",
    ) -> None:
        model, ddp_group = unwrap_model(model)
        self._group = resolve_group(process_group, ddp_group)
        if self._group is None:
            self._build(
                model, loss_fn, data, params, microbatch_size, check_deterministic, block_strategy
            )
        else:
            # Every rank takes part in the agreement check, even one whose construction
            # failed, so that all ranks raise instead of the others waiting in a collective.
            # Any exception (a user model's AssertionError or KeyError too), not only ours.
            error: BaseException | None = None
            try:
                self._build(
                    model,
                    loss_fn,
                    data,
                    params,
                    microbatch_size,
                    check_deterministic,
                    block_strategy,
                )
            except Exception as caught:  # re-raised after the collective
                error = caught
            if error is None:
                total, splits = agree_at_construction(
                    self._group,
                    self._params,
                    self._n_local_samples,
                    None,
                    splits=self._splits_batches,
                )
                self._use_global_count(total, splits)
            else:  # gather on the device the group expects (the model's, if it has any)
                tensors = [*model.parameters()][:1] if isinstance(model, torch.nn.Module) else []
                agree_at_construction(self._group, tensors or [torch.zeros(())], 0, error)
        size = sum(self._numels)
        super().__init__(
            (size, size),
            self._params[0].dtype,
            xp=xp_torch,
            device=self._params[0].device,
            symmetric=True,
            psd=psd,
        )

    def _build(
        self,
        model: torch.nn.Module,
        loss_fn: LossFunction,
        data: Any,
        params: Iterable[str | torch.Tensor] | None,
        microbatch_size: int | None,
        check_deterministic: bool,
        block_strategy: str,
    ) -> None:
        """Validate the arguments and set up the rank-local state (no collectives)."""
        names, tensors = select_parameters(model, params)
        if not callable(loss_fn):
            message = f"loss_fn must be callable as loss_fn(outputs, targets), got {loss_fn!r}"
            raise TypeError(message)
        check_positive_int(microbatch_size, "microbatch_size", allow_none=True)
        if not isinstance(check_deterministic, bool):
            message = f"check_deterministic must be True or False, got {check_deterministic!r}"
            raise TypeError(message)
        if not isinstance(block_strategy, str) or block_strategy not in _BLOCK_STRATEGIES:
            message = f"block_strategy must be one of {_BLOCK_STRATEGIES}, got {block_strategy!r}"
            raise ValueError(message)
        self._block_setting = block_strategy
        self._model = model
        self._loss_fn = loss_fn
        self._names = names
        self._params = tensors
        self._shapes = [tuple(t.shape) for t in tensors]
        self._numels = [t.numel() for t in tensors]
        self._microbatch_size = microbatch_size
        self._check_deterministic = check_deterministic
        self._watch_model_structure()
        self._model_tensors = [*model.parameters(), *model.buffers()]
        self._states: list[Any] | None = None
        self._key: tuple | None = None
        # The product of a flat vector at the current point, when one call computes it
        # (set by subclasses after a build; see _matvec).
        # ``replay(x, batched)``: ``H x`` for a flat ``x`` (``batched``: the rows of a block) or
        # ``None`` where the general path must do it.
        self._replay: Callable[[torch.Tensor, bool], torch.Tensor | None] | None = None
        # (key, loss, gradient) of the global loss, and of this rank's share of it.
        self._gradient_cache: tuple[tuple, torch.Tensor, torch.Tensor] | None = None
        self._local_gradient_cache: tuple[tuple, torch.Tensor, torch.Tensor] | None = None
        self._block_timings: dict[str, list[float]] | None = {"batched": [], "loop": []}
        self._set_local_data(data)

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
        if self._states is None:
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
        self._states = None
        self._key = None
        self._replay = None  # it holds the graph too
        self._gradient_cache = None
        self._local_gradient_cache = None

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

    def loss_and_gradient(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the mean loss over the data and its gradient as a flat vector.

        Both are detached, at the current parameters; the running statistics of BatchNorm
        layers are not updated. With a process group, both are of the global mean loss (over
        the samples of all ranks), reduced in one all-reduce, identical on every rank.
        """
        self._follow_replaced_parameters()
        key = self._state()
        if self._gradient_cache is not None and self._gradient_cache[0] == key:
            return self._gradient_cache[1], self._gradient_cache[2]
        loss, gradient = self._local_loss_and_gradient()
        if self._group is not None:
            # One collective for both: the loss travels as an extra element of the gradient.
            buffer = gradient.new_empty(gradient.shape[0] + 1)
            buffer[0] = loss
            buffer[1:] = gradient
            all_reduce_sum(buffer, self._group)
            loss, gradient = buffer[0].to(loss.dtype), buffer[1:]
        self._gradient_cache = (self._state(pin=True), loss, gradient)
        return loss, gradient

    def _local_loss_and_gradient(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return this rank's share of the loss and gradient (all of them without a group)."""
        key = self._state()
        cache = self._local_gradient_cache
        if cache is not None and cache[0] == key:
            return cache[1], cache[2]
        loss, gradient = self._fresh_loss_and_gradient()
        self._local_gradient_cache = (self._state(pin=True), loss, gradient)
        return loss, gradient

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
        if self._gradient_cache is not None and self._gradient_cache[0] == key:
            return self._gradient_cache[1]
        cache = self._local_gradient_cache
        loss = cache[1] if cache is not None and cache[0] == key else self._fresh_loss()
        if self._group is not None:
            loss = all_reduce_sum(loss.reshape(1).clone(), self._group)[0]
        return loss

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

    def gradient(self) -> torch.Tensor:
        """Return the gradient of the mean loss over the data, as a flat vector."""
        return self.loss_and_gradient()[1]

    # ------------------------------------------------------------------ products
    def matvec(self, x: Any) -> Any:
        """Return ``H @ x`` for a flat vector ``x`` (see :meth:`LinearOperator.matvec`)."""
        if self._is_ready(x, 1):
            return self._matvec(x)
        return super().matvec(x)

    def matmat(self, X: Any) -> Any:
        """Return ``H @ X`` for a block ``X`` of shape ``(n, k)``, as one batched product."""
        if self._is_ready(X, 2):
            return self._matmat(X)
        return super().matmat(X)

    def _is_ready(self, x: Any, ndim: int) -> bool:
        """Whether ``x`` needs no checks or conversion: the fast path of repeated products."""
        return (
            type(x) is torch.Tensor
            and x.ndim == ndim
            and x.shape[0] == self._shape[1]
            and x.dtype == self._dtype
            and x.device == self._device
        )

    def __matmul__(self, other: Any) -> Any:
        # The common case of solvers, ``H @ v`` with a ready vector, skips the generic dispatch.
        if type(other) is torch.Tensor and other.ndim == 1 and self._is_ready(other, 1):
            return self._matvec(other)
        return super().__matmul__(other)

    def _matvec(self, x: torch.Tensor) -> torch.Tensor:
        result = None
        if self._replay is not None and self._is_current():
            try:
                result = self._replay(x, False)
            except torch.OutOfMemoryError:
                raise
            except (RuntimeError, NotImplementedError):
                # The general path below repeats the product and handles the failure (mode
                # fallback).
                result = None
        if result is None:
            result = _flatten(self._product(_unflatten(x, self._params), batched=False))
        if self._group is None:
            return result
        if len(self._params) == 1:
            # Flattening one tensor is a view, and autograd may hand back its grad_outputs
            # (a view of x) unchanged: reduce into memory of our own, never into x.
            result = result.clone()
        return all_reduce_sum(result, self._group)

    def _matmat(self, X: torch.Tensor) -> torch.Tensor:
        k = X.shape[1]
        if k == 0:
            return X.new_zeros((X.shape[0], 0))
        if k == 1:
            return self._matvec(X[:, 0])[:, None]
        rows = X.T.contiguous()
        block = None
        if self._replay is not None and self._is_current():
            try:
                block = self._replayed_block(rows)
            except torch.OutOfMemoryError:
                raise
            except (RuntimeError, NotImplementedError):
                block = None  # as in _matvec: the general path handles the failure
        if block is None:
            vectors = [
                part.view((k, *shape))
                for part, shape in zip(
                    rows.split_with_sizes(self._numels, dim=1), self._shapes, strict=True
                )
            ]
            result = self._product(vectors, batched=True)
            # torch.cat allocates the (k, n) block, so all k columns are reduced in one call.
            block = torch.cat([part.reshape(k, -1) for part in result], dim=1)
        if self._group is not None:
            all_reduce_sum(block, self._group)
        return block.T

    def _product(self, vectors: list[torch.Tensor], *, batched: bool) -> list[torch.Tensor]:
        """Apply the operator to parameter-shaped vectors, with the mode fallback of subclasses."""
        while True:
            try:
                self._ensure_current()
                if self._states is not None and self._replays_graph():
                    # Only the retained graph is used: no forward pass, no context needed.
                    return self._apply_all(vectors, batched=batched)
                with self._evaluation():
                    return self._apply_all(vectors, batched=batched)
            except (NondeterministicLossError, torch.OutOfMemoryError):
                raise
            except (RuntimeError, NotImplementedError) as error:
                self._handle_failure(error)

    def _replays_graph(self) -> bool:
        """Whether products only replay cached state (no forward pass of the model)."""
        return True

    def _apply_all(self, vectors: list[torch.Tensor], *, batched: bool) -> list[torch.Tensor]:
        if not batched:
            return self._apply_chunks(vectors, batched=False)
        # A block goes through one batched call (vmap or autograd's batched gradients) or
        # column by column. Batching is not always faster on a CPU (convolutions), so the first
        # blocks alternate between both and the faster per column is kept. The two give the
        # same products up to rounding.
        strategy = self._block_strategy()
        if strategy == "batched":
            start = time.perf_counter()
            try:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=_VMAP_SLOW_PATH)
                    result = self._apply_chunks(vectors, batched=True)
            except (RuntimeError, NotImplementedError):
                # vmap cannot run here: loop over the columns from now on.
                self._block_timings = None
            else:
                self._record_block("batched", start, vectors[0].shape[0])
                return result
        start = time.perf_counter()
        columns = [
            self._apply_chunks([v[j] for v in vectors], batched=False)
            for j in range(vectors[0].shape[0])
        ]
        self._record_block("loop", start, vectors[0].shape[0])
        return [torch.stack(parts) for parts in zip(*columns, strict=True)]

    def _replayed_block(self, rows: torch.Tensor) -> torch.Tensor | None:
        """Return the ``(k, n)`` products of ``rows`` through :attr:`_replay` (or ``None``).

        The same choice between one batched call and a loop over the rows as in
        :meth:`_apply_all`, which takes over if the batched call fails.
        """
        assert self._replay is not None
        k = rows.shape[0]
        start = time.perf_counter()
        if self._block_strategy() == "batched":
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_VMAP_SLOW_PATH)
                block = self._replay(rows, True)
            if block is not None:
                self._record_block("batched", start, k)
            return block
        products = [self._replay(row, False) for row in rows]
        if any(product is None for product in products):
            return None
        self._record_block("loop", start, k)
        return torch.stack(products)

    def _block_strategy(self) -> str:
        timings = self._block_timings
        if timings is None:
            return "loop"
        if self._block_setting != "auto":
            return self._block_setting
        batched, loop = timings["batched"], timings["loop"]
        if len(batched) < _EXPLORE or len(loop) < _EXPLORE:  # alternate: batched, loop, ...
            return "batched" if len(batched) <= len(loop) else "loop"
        return "batched" if min(batched) <= min(loop) else "loop"

    def _record_block(self, strategy: str, start: float, columns: int) -> None:
        if self._block_timings is not None and len(self._block_timings[strategy]) < _EXPLORE:
            self._block_timings[strategy].append((time.perf_counter() - start) / columns)

    def _apply_chunks(self, vectors: list[torch.Tensor], *, batched: bool) -> list[torch.Tensor]:
        if self._states is not None:
            if len(self._states) == 1:
                return list(self._apply_chunk(self._states[0], vectors, batched))
            pairs: Iterator[tuple[Chunk, Any]] = zip(self._chunks, self._states, strict=True)
        else:
            pairs = self._streamed_states()
        total: list[torch.Tensor] | None = None
        for _, state in pairs:
            part = self._apply_chunk(state, vectors, batched)
            if total is None:
                total = list(part)
            else:
                for i, tensor in enumerate(part):
                    total[i] += tensor
        if total is None:  # an empty shard of data-parallel data contributes zero
            return self._zeros_like_params(vectors, batched)
        return total

    def _streamed_states(self) -> Iterator[tuple[Chunk, Any]]:
        for chunk in self._chunks:
            state = self._build_chunk(chunk)
            yield chunk, state
            del state

    def _zeros_like_params(self, vectors: list[torch.Tensor], batched: bool) -> list[torch.Tensor]:
        lead = (vectors[0].shape[0],) if batched else ()
        return [
            p.new_zeros((*lead, *shape))
            for p, shape in zip(self._params, self._shapes, strict=True)
        ]

    # ------------------------------------------------------------------ parameter point
    def _state(self, *, pin: bool = False) -> tuple:
        # pin: a key to be stored, which keeps the addresses it names from being reused.
        return state_key(self._tracked, self._modules, pin=pin)

    def _is_current(self) -> bool:
        """Whether the cached states are those of the current point (no rebuild needed)."""
        return self._key is not None and self._structure_unchanged() and self._state() == self._key

    def _ensure_current(self) -> None:
        self._follow_replaced_parameters()
        key = self._state()
        if key == self._key:
            return
        self._check_microbatching()
        self._states = None
        self._key = None
        self._replay = None
        if self._cached:
            with self._evaluation():
                states = [self._build_chunk(chunk) for chunk in self._chunks]
            self._states = states
        self._after_build()
        self._key = self._state(pin=True)
        if self._check_deterministic:
            self._verify_deterministic()

    def _follow_replaced_parameters(self) -> None:
        """Pick up parameters or buffers replaced by new tensors (``load_state_dict(assign=True)``).

        The operator differentiates with respect to the model's parameters *by name*: when a
        module attribute now holds another tensor, the selection is looked up again.
        """
        if self._structure_unchanged():
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
        self._watch_model_structure()  # only now: an invalid model raises again next time
        self._model_tensors = current
        self._tracked = [*self._model_tensors, *self._data_tensors]
        self.release()

    def _watch_model_structure(self) -> None:
        """Record the module tree and what each module holds (see _structure_unchanged)."""
        model = self._model
        self._modules = list(model.modules())
        self._batch_norms = [m for m in self._modules if isinstance(m, _BatchNorm)]
        owned = {id(b) for bn in self._batch_norms for b in bn.buffers(recurse=False)}
        self._other_buffers = [b for b in model.buffers() if id(b) not in owned]
        self._members = self._module_members()

    def _module_members(self) -> list[Any]:
        # Every parameter, buffer and child module of every module, in one flat list.
        return [
            member
            for module in self._modules
            for members in (module._parameters, module._buffers, module._modules)
            for member in members.values()
        ]

    def _structure_unchanged(self) -> bool:
        """Whether no module attribute was replaced since :meth:`_watch_model_structure`.

        The tree below the model is unchanged if every known module still holds the same
        children, parameters and buffers (compared by identity), so this is the check that
        ``model.parameters()`` and ``model.buffers()`` return the same tensors, without
        walking the tree with generators on every product.
        """
        current = self._module_members()
        saved = self._members
        return len(current) == len(saved) and all(map(operator.is_, current, saved))

    def _check_microbatching(self) -> None:
        if self._splits_batches and any(bn.training for bn in self._batch_norms):
            message = (
                "microbatch_size splits the batches, but the model has BatchNorm layers in train "
                "mode: each piece would be normalised with its own statistics, a different loss. "
                "Call model.eval(), or do not split (microbatch_size=None or >= the batch size)"
            )
            raise ValueError(message)

    def _converted_dtype(self, x: torch.Tensor, method: str) -> torch.Tensor:
        message = (
            f"{method} got a {x.dtype} vector, but the parameters are {self._dtype}; pass vectors "
            "of the parameters' dtype (e.g. the output of flatten() or gradient())"
        )
        raise TypeError(message)

    def _after_build(self) -> None:
        """Prepare derived data after the chunk states are built at a new point (a hook)."""

    def _verify_deterministic(self) -> None:
        """Evaluate this rank's loss and gradient twice; raise if they differ.

        With a process group the verdicts are all-reduced (one number per rank), so that when
        the check fails on some ranks every rank raises instead of the others waiting in the
        product's all-reduce.
        """
        first = self._local_loss_and_gradient()
        second = self._fresh_loss_and_gradient()
        rtol = float(torch.finfo(self.dtype).eps) ** 0.5
        message = None
        for what, a, b in (("loss", first[0], second[0]), ("gradient", first[1], second[1])):
            scale = max(float(torch.linalg.vector_norm(a)), float(torch.finfo(self.dtype).tiny))
            difference = float(torch.linalg.vector_norm(a - b))
            if not difference <= rtol * scale:
                message = (
                    f"the {what} differs between two evaluations at the same parameters "
                    f"(relative difference {difference / scale:.2e}): the model or the loss is "
                    "random (Dropout or another random layer in training mode?), so curvature "
                    "products would not be reproducible; call model.eval() to disable Dropout, "
                    "or make the randomness fixed (a seeded torch.Generator reset per call)"
                )
                break
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

    # ------------------------------------------------------------------ evaluation
    @contextlib.contextmanager
    def _evaluation(self) -> Iterator[None]:
        """Autograd on (also inside ``torch.no_grad()``), buffers frozen."""
        with torch.enable_grad(), frozen_buffers(self._batch_norms, self._other_buffers):
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
        self._states = None
        self._key = None
        self._replay = None  # it holds the graph too
        self._gradient_cache = None
        self._local_gradient_cache = None

    def _validate_first(self, chunk: Chunk) -> None:
        """Evaluate the loss once on the first chunk for early, clear errors."""
        with torch.no_grad(), frozen_buffers(self._batch_norms, self._other_buffers):
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

    def _cache_roots(self) -> list[Any]:
        return list(self._states or [])

    def _handle_failure(self, error: BaseException) -> None:
        raise error
