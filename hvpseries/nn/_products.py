"""Curvature products on flat vectors and blocks: replay, block strategy, chunks, ranks.

A product of a flat vector first tries the operator's replay (one call at the current point,
see :class:`~hvpseries.nn._cache.PointCache`); otherwise the vector is split into
parameter-shaped tensors, the curvature of every chunk of data is applied and summed, and the
result is flattened. With a process group the local result is summed over the ranks by one
all-reduce. A block of vectors goes through one batched call (``torch.func.vmap`` or
autograd's batched gradients) or column by column, as the block strategy says.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator
from typing import Any

import torch

from ._attention import attention_kernels, is_attention_failure
from ._cache import PointCache
from ._data import Chunk
from ._distributed import all_reduce_sum
from ._errors import AttentionBackendWarning, NondeterministicLossError
from ._params import flatten, unflatten

__all__ = ["BLOCK_STRATEGIES", "BlockTimings", "ProductsMixin", "new_block_timings"]

BLOCK_STRATEGIES = ("auto", "batched", "loop")

# Seconds per column of the first blocks applied each way ("batched", "loop"). An operator's
# timings are ``None`` once the batched call failed: the loop is used from then on.
BlockTimings = dict[str, list[float]]

# Blocks timed per strategy (batched call, column loop) before the faster is kept; the minimum
# over the samples discounts the warm-up of the first call and noise from other processes.
_EXPLORE = 3

# torch warns when vmap runs an operator without a batching rule (it then loops internally);
# that is the loop this package would fall back to anyway.
_VMAP_SLOW_PATH = r".*(performance drop|batching rule).*"


def new_block_timings() -> BlockTimings:
    """Return the timings of an operator that has applied no block yet."""
    return {"batched": [], "loop": []}


@contextlib.contextmanager
def _batching_quietly() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_VMAP_SLOW_PATH)
        yield


class ProductsMixin:
    """The products of :class:`~hvpseries.nn._base.CurvatureOperator`.

    Overrides the application methods of :class:`~hvpseries.LinearOperator` (it comes before
    it in the operator's bases). Uses the operator's attributes annotated below, the
    parameter point of :class:`~hvpseries.nn._guards.GuardsMixin` (``_ensure_current``,
    ``_is_current``), the evaluation context of :class:`~hvpseries.nn._loss.LossMixin` and the
    subclass hooks ``_build_chunk``, ``_apply_chunk``, ``_replays_graph`` and
    ``_handle_failure``.

    ``"auto"`` block strategy: batching is not always faster on a CPU (convolutions), so the
    first blocks alternate between one batched call and a loop over the columns, and the
    faster per column is kept. The two give the same products up to rounding.
    """

    _params: list[torch.Tensor]
    _shapes: list[tuple[int, ...]]
    _numels: list[int]
    _chunks: list[Chunk]
    _cache: PointCache
    _group: Any
    _block_setting: str
    _block_timings: BlockTimings | None
    _attention_backend: str

    def __matmul__(self, other: Any) -> Any:
        # The common case, ``H @ v`` with a ready vector (LinearOperator's checked-once fast
        # path), skips the generic dispatch.
        if type(other) is torch.Tensor and self._is_ready(other, 1):
            return self._matvec(other)
        return super().__matmul__(other)

    def _converted_dtype(self, x: torch.Tensor, method: str) -> torch.Tensor:
        message = (
            f"{method} got a {x.dtype} vector, but the parameters are {self._dtype}; pass vectors "
            "of the parameters' dtype (e.g. the output of flatten() or gradient())"
        )
        raise TypeError(message)

    # ------------------------------------------------------------------ flat vectors and blocks
    def _matvec(self, x: torch.Tensor) -> torch.Tensor:
        result = None
        replay = self._cache.replay
        if replay is not None and self._is_current():
            try:
                result = replay(x, False)
            except torch.OutOfMemoryError:
                raise
            except (RuntimeError, NotImplementedError):
                # The general path below repeats the product and handles the failure (mode
                # fallback).
                result = None
        if result is None:
            result = flatten(self._product(unflatten(x, self._params), batched=False))
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
        if self._cache.replay is not None and self._is_current():
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

    def _replayed_block(self, rows: torch.Tensor) -> torch.Tensor | None:
        """Return the ``(k, n)`` products of ``rows`` through the replay (or ``None``).

        The same choice between one batched call and a loop over the rows as in
        :meth:`_apply_all`, which takes over if the batched call fails.
        """
        replay = self._cache.replay
        assert replay is not None
        k = rows.shape[0]
        start = time.perf_counter()
        if self._block_strategy() == "batched":
            with _batching_quietly():
                block = replay(rows, True)
            if block is not None:
                self._record_block("batched", start, k)
            return block
        products = [replay(row, False) for row in rows]
        if any(product is None for product in products):
            return None
        self._record_block("loop", start, k)
        return torch.stack(products)

    # ------------------------------------------------------------------ parameter-shaped
    def _product(self, vectors: list[torch.Tensor], *, batched: bool) -> list[torch.Tensor]:
        """Apply the operator to parameter-shaped vectors, with the mode fallback of subclasses."""
        while True:
            try:
                self._ensure_current()
                if self._cache.states is not None and self._replays_graph():
                    # Only the retained graph is used: no forward pass, no context needed.
                    return self._apply_all(vectors, batched=batched)
                with self._curvature_pass():
                    return self._apply_all(vectors, batched=batched)
            except (NondeterministicLossError, torch.OutOfMemoryError):
                raise
            except (RuntimeError, NotImplementedError) as error:
                if not self._use_math_attention(error):
                    self._handle_failure(error)

    @contextlib.contextmanager
    def _curvature_pass(self) -> Iterator[None]:
        """Enter the context of a pass that differentiates twice (evaluation, attention)."""
        with self._evaluation(), attention_kernels(self._attention_backend):
            yield

    def _use_math_attention(self, error: BaseException) -> bool:
        """Switch to the math attention backend if ``error`` came from a fused kernel."""
        if self._attention_backend != "default" or not is_attention_failure(error):
            return False
        self._attention_backend = "math"
        self.release()
        message = (
            f"{type(self).__name__}: PyTorch's fused scaled-dot-product attention kernels have "
            "no second derivatives, so the curvature passes use the math attention backend "
            "(the same function, exact, slower); the loss and gradient use the default kernels"
        )
        warnings.warn(message, AttentionBackendWarning, stacklevel=3)
        return True

    def _apply_all(self, vectors: list[torch.Tensor], *, batched: bool) -> list[torch.Tensor]:
        if not batched:
            return self._apply_chunks(vectors, batched=False)
        # A block goes through one batched call (vmap or autograd's batched gradients) or
        # column by column, as the block strategy says (see the class docstring).
        if self._block_strategy() == "batched":
            start = time.perf_counter()
            try:
                with _batching_quietly():
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

    def _apply_chunks(self, vectors: list[torch.Tensor], *, batched: bool) -> list[torch.Tensor]:
        states = self._cache.states
        if states is not None:
            if len(states) == 1:
                return list(self._apply_chunk(states[0], vectors, batched))
            pairs: Iterator[tuple[Chunk, Any]] = zip(self._chunks, states, strict=True)
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

    def _parameter_products(
        self, roots: Any, grad_outputs: Any, vectors: list[torch.Tensor], batched: bool
    ) -> list[torch.Tensor]:
        """Differentiate ``roots`` along ``grad_outputs`` with respect to the parameters.

        One ``torch.autograd.grad`` call that keeps the graph (``batched``: the leading
        dimension of ``grad_outputs`` is the block); a parameter that ``roots`` do not depend
        on gets zeros shaped like the products of ``vectors``.
        """
        products = torch.autograd.grad(
            roots,
            self._params,
            grad_outputs=grad_outputs,
            retain_graph=True,
            allow_unused=True,
            is_grads_batched=batched,
        )
        if any(p is None for p in products):
            zeros = self._zeros_like_params(vectors, batched)
            return [z if p is None else p for p, z in zip(products, zeros, strict=True)]
        return list(products)

    # ------------------------------------------------------------------ block strategy
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
