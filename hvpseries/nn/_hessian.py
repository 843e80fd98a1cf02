"""The Hessian of a neural-network loss as a :class:`~hvpseries.LinearOperator`."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterable
from typing import Any

import torch
from torch.func import functional_call, grad, jvp, linearize, vmap

from ._base import CurvatureOperator
from ._cache import Replay
from ._data import Chunk
from ._data import weighted as _weighted
from ._errors import ModeFallbackWarning
from ._loss import LossFunction
from ._params import flatten, unflatten
from ._products import new_block_timings
from ._state import StableLossMode, cuts_second_derivatives

__all__ = ["MODES", "HessianOperator"]

MODES = ("auto", "double-backward", "linearize", "forward-over-reverse", "finite-difference")

# Where a mode goes when it fails on a model. Finite differences are never chosen silently:
# they are approximate.
_FALLBACK = {
    "double-backward": "forward-over-reverse",
    "forward-over-reverse": "double-backward",
    "linearize": "double-backward",
    "finite-difference": None,
}

# torch.func.linearize's constant folding warns about an internal detail of its own graph.
_LINEARIZE_NOISE = r"Attempted to insert a get_attr Node"


class HessianOperator(CurvatureOperator):
    r"""The Hessian of a model's mean loss over data, as a matrix-free linear operator.

    The operator acts on flat vectors of the selected parameters (torch tensors on the
    parameters' device and dtype) and is tagged symmetric, so every hvpseries solver accepts
    it. At each parameter point it builds the linearisation of the gradient once and reuses it
    for every product; it notices when the parameters change (``optimizer.step()``, loading a
    state dict, even with ``assign=True``, switching train/eval) and rebuilds. Edits through
    ``p.data`` in place (``p.data.add_(...)``) bypass the version counters: call
    :meth:`update` after them.

    Parameters
    ----------
    model : torch.nn.Module
        The network. It is called as ``model(inputs)``.
    loss_fn : callable
        ``loss_fn(outputs, targets)`` returns the *mean* loss over the batch as a scalar tensor
        (``torch.nn.MSELoss()``, ``torch.nn.functional.cross_entropy``, ...).
    data : (Tensor, Tensor) or iterable of (Tensor, Tensor)
        One batch ``(inputs, targets)`` or several (a list, a ``DataLoader``; it is read
        once and its tensors are kept). The leading dimension of each tensor is the batch.
    params : iterable of str or Tensor, optional
        The parameters to differentiate with respect to, by name (as in
        ``model.named_parameters()``) or as tensors, in the order of the flat vectors.
        Default: every parameter with ``requires_grad=True``, in model order.
    mode : str, optional
        How products are computed (see Notes): ``"auto"`` (default, which is
        ``"double-backward"``), ``"double-backward"``, ``"linearize"``,
        ``"forward-over-reverse"`` or ``"finite-difference"``.
    microbatch_size : int, optional
        Split batches into pieces of at most this many samples, evaluated one after another
        and not cached: memory is bounded by one piece, and each product re-runs the forward
        and backward passes. Default: no splitting, linearisation cached.
    check_deterministic : bool, optional
        At each new parameter point, evaluate the loss and gradient twice and raise if they
        differ (random layers such as Dropout in training mode). Default ``False``.
    block_strategy : {"auto", "batched", "loop"}, optional
        How :meth:`matmat` applies a block: one batched call (``torch.func.vmap`` or batched
        gradients), a loop over the columns, or ``"auto"`` (default): time both on the first
        blocks and keep the faster per column. The two agree to rounding; ``"auto"`` makes
        the last bits depend on timings, so pin a strategy for bit-reproducible runs.
    process_group : torch.distributed.ProcessGroup, None or False, optional
        Data parallelism (see Notes). ``None`` (default): the group of a
        ``DistributedDataParallel`` model if one is given, else the default group if
        ``torch.distributed`` is initialised, else none; ``False``: a local operator even
        inside an initialised group; a group: reduce over that group. Each rank passes its own
        shard of the data; products, :meth:`gradient` and :meth:`loss_and_gradient` are then
        of the mean loss over the samples of all ranks.

    Attributes
    ----------
    mode : str
        The mode in use (after any automatic fallback).
    param_names, params : tuple
        The selected parameters, in the order of the flat vectors.
    cached_nbytes : int
        Memory held by the cached linearisation.
    process_group : ProcessGroup or None
        The group results are reduced over (``None``: local).
    n_samples, n_local_samples : int
        Samples over all ranks, and on this rank.

    Raises
    ------
    ValueError
        If the model has no trainable parameters, the data has the wrong structure or shape,
        the model cannot be evaluated on it, or ``loss_fn`` does not return a scalar; with a
        process group, also if the ranks disagree on the parameters (number, shapes, dtype or
        values) or every rank's shard is empty. This is raised on every rank.
    TypeError
        If an argument has the wrong type.
    RuntimeError
        With a process group, on every rank whose own construction succeeded when another
        rank's failed (that rank raises its own error).

    Notes
    -----
    **The operator.** With batches :math:`B_1, \dots, B_m` of sizes :math:`n_j` and
    :math:`N = \sum_j n_j`, the loss is
    :math:`L(\theta) = \sum_j (n_j / N)\,\ell(f_\theta(X_j), Y_j)`, the mean over all samples
    when ``loss_fn`` averages over its batch (batches are weighted by their size). The
    operator is :math:`\nabla^2 L(\theta)`, and :meth:`gradient` is :math:`\nabla L(\theta)`.

    **Buffers and train/eval.** In evaluation mode the loss uses BatchNorm's running
    statistics; in training mode it is the loss a training step computes, normalised with the
    statistics of each batch (the Hessian then includes the coupling of the samples through
    those statistics). Products never update running statistics or other buffers. Dropout
    or other randomness in training mode makes the loss random; ``check_deterministic=True``
    detects it. The cached linearisation then holds one random draw.

    **Modes.** ``"double-backward"`` differentiates the gradient's autograd graph, which
    is retained between products (about 1-2.5 gradients per product); it works for every
    operation with a second derivative in autograd, BatchNorm in training mode included.
    ``"linearize"`` caches ``torch.func.linearize`` of the gradient (similar cost).
    ``"forward-over-reverse"`` evaluates ``torch.func.jvp`` of ``torch.func.grad`` afresh for
    every product (2-8 gradients, nothing cached). In the two ``torch.func`` modes the fused
    ``F.mse_loss`` kernel is replaced by its elementary form, because torch's forward-mode
    derivative of it fails (and crashes ``linearize``). If a mode fails on the model, the
    operator switches to another exact mode once and says so with a
    :class:`ModeFallbackWarning`. ``"finite-difference"`` uses central differences of
    gradients, :math:`(\nabla L(\theta + h v) - \nabla L(\theta - h v)) / 2h` with
    :math:`h = \epsilon^{1/3} (1 + \|\theta\|) / \|v\|`, an approximation with relative error
    around :math:`\epsilon^{2/3}` on smooth losses; **it is unreliable on ReLU networks**,
    where the gradient jumps at kinks that the step may cross. A block of vectors
    (:meth:`matmat`) is processed in one batched call (``torch.func.vmap`` or autograd's
    batched gradients) where torch can, column by column otherwise.

    **Data parallelism.** With a process group of :math:`R` ranks, rank :math:`r` holding
    batches of :math:`N_r` samples, the loss is the mean over all :math:`N = \sum_r N_r`
    samples: every local batch is weighted by :math:`n_j / N`, each rank computes its share
    (zero for an empty shard, which is allowed) and the shares are summed. The construction
    all-gathers a few numbers per rank once (the global sample count, and a check that all
    ranks have the same parameter count, shapes, dtype and values, raising a ``ValueError``
    that names the ranks that differ); :meth:`update` with new data all-reduces the sample
    counts once. After that, each :meth:`matvec` is exactly one all-reduce of the result, a
    :meth:`matmat` of :math:`k` vectors one all-reduce of the :math:`n \times k` block, and
    :meth:`loss_and_gradient` (or :meth:`gradient`) one all-reduce of :math:`n + 1` numbers
    (cached at a parameter point). An all-reduce returns the same sum on every rank and
    nothing rank-local follows it, so all ranks get bit-identical results; they must call the
    same methods in the same order with identical vectors (as a solver or optimizer running
    on every rank does). The parameters' device must suit the group's backend (gloo: CPU;
    NCCL: CUDA). Train-mode BatchNorm normalises with each rank's batch statistics, as with
    ``DistributedDataParallel``. A ``DistributedDataParallel`` model is unwrapped: the
    operator differentiates ``model.module`` (whose parameters the wrapper shares) and
    reduces itself, since the wrapper's hooks expect a plain forward and backward; with
    ``process_group=None`` it uses the wrapper's group. Build operators on every rank of the
    group: one built on one rank only (for example rank 0 alone) waits for the others until
    the group's timeout; pass ``process_group=False`` for a local operator.

    **Failures across ranks.** An error during construction or :meth:`update` on one rank
    is raised on every rank (the others raise ``RuntimeError`` naming it). An error during a
    product on one rank (out of memory, a non-finite check) stops that rank before its
    all-reduce; the other ranks then wait in theirs until the process group's timeout and
    raise there. Set ``timeout=`` in ``torch.distributed.init_process_group`` to bound that
    wait (the NCCL default is long). ``check_deterministic`` checks each rank's share and
    all-reduces the verdicts (one number per rank, at each new point): when it fails on some
    ranks, every rank raises :class:`~hvpseries.nn.NondeterministicLossError` (the others naming
    them).

    Examples
    --------
    >>> import torch
    >>> from hvpseries.nn import HessianOperator
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(
    ...     torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)
    ... ).double()
    >>> data = (torch.randn(16, 3, dtype=torch.float64), torch.randn(16, 1, dtype=torch.float64))
    >>> H = HessianOperator(model, torch.nn.MSELoss(), data)
    >>> H
    <21x21 HessianOperator(dtype=float64, backend=torch, device=cpu, symmetric=True, psd=None,
    attention_backend='default')>
    >>> v = torch.ones(21, dtype=torch.float64)
    >>> (H @ v).shape
    torch.Size([21])
    >>> torch.allclose(H @ torch.eye(21, dtype=torch.float64), H.todense())
    True
    >>> H.gradient().shape
    torch.Size([21])
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: LossFunction,
        data: Any,
        *,
        params: Iterable[str | torch.Tensor] | None = None,
        mode: str = "auto",
        microbatch_size: int | None = None,
        check_deterministic: bool = False,
        process_group: Any = None,
        block_strategy: str = "auto",
    ) -> None:
        if mode not in MODES:
            message = f"mode must be one of {MODES}, got {mode!r}"
            raise ValueError(message)
        self._mode = "double-backward" if mode == "auto" else mode
        self._tried = {self._mode}
        self._param_norm: float | None = None
        super().__init__(
            model,
            loss_fn,
            data,
            params=params,
            microbatch_size=microbatch_size,
            check_deterministic=check_deterministic,
            process_group=process_group,
            block_strategy=block_strategy,
        )

    @property
    def mode(self) -> str:
        """The mode computing the products (after any automatic fallback)."""
        return self._mode

    # ------------------------------------------------------------------ per chunk
    def _build_chunk(self, chunk: Chunk) -> Any:
        if self._mode == "double-backward":
            return self._build_double_backward(chunk)
        if self._mode == "linearize" and self._cached:
            return self._build_linearize(chunk)
        return chunk  # forward-over-reverse and finite differences evaluate afresh

    def _apply_chunk(self, state: Any, vectors: list[torch.Tensor], batched: bool) -> list[Any]:
        if self._mode == "double-backward":
            return self._apply_double_backward(state, vectors, batched)
        if self._mode == "linearize" and self._cached:
            jvp_fn = state[0]
            with torch.no_grad():
                if batched:
                    return list(vmap(jvp_fn)(tuple(vectors)))
                return list(jvp_fn(tuple(vectors)))
        if self._mode == "finite-difference":
            if batched:
                columns = [
                    self._apply_finite_difference(state, [v[j] for v in vectors])
                    for j in range(vectors[0].shape[0])
                ]
                return [torch.stack(parts) for parts in zip(*columns, strict=True)]
            return self._apply_finite_difference(state, vectors)
        return self._apply_forward_over_reverse(state, vectors, batched)

    def _replays_graph(self) -> bool:
        return self._mode in ("double-backward", "linearize")

    def _after_build(self) -> None:
        cache = self._cache
        states = cache.states
        if self._mode == "double-backward" and states:
            # Under the math attention backend the build's loss and gradient are not those of
            # the model's own kernels: they are computed afresh when asked for.
            if self._attention_backend == "default":
                loss = sum(state[2] for state in states)
                gradient = torch.cat(
                    [
                        sum(parts).reshape(-1)
                        for parts in zip(*(state[3] for state in states), strict=True)
                    ]
                )
                cache.local_gradient = (self._state(pin=True), loss, gradient)
            if len(states) == 1 and len(states[0][1]) == len(self._params):
                cache.replay = _double_backward_replay(states[0][0], list(self._params))
        if self._mode == "finite-difference":
            norms = torch.stack([torch.linalg.vector_norm(p.detach()) for p in self._params])
            self._param_norm = float(torch.linalg.vector_norm(norms))

    def _cache_roots(self) -> list[Any]:
        states = self._cache.states
        if states is None:
            return []
        if self._mode == "double-backward":
            return [state[0] for state in states]
        if self._mode == "linearize" and self._cached:
            return [state[0] for state in states]
        return []

    # ------------------------------------------------------------------ double backward
    def _build_double_backward(self, chunk: Chunk) -> tuple:
        loss = _weighted(chunk, self._checked_loss(self._outputs(chunk.inputs), chunk.targets))
        grads = torch.autograd.grad(
            loss, self._params, create_graph=True, allow_unused=True, materialize_grads=True
        )
        live = [i for i, g in enumerate(grads) if g.requires_grad]
        if cuts_second_derivatives([grads[i] for i in live]):
            message = (
                "the gradient's autograd graph contains a node that cannot be differentiated "
                "again (a custom autograd.Function whose backward is @once_differentiable?); "
                "double backward would silently drop those second derivatives"
            )
            raise RuntimeError(message)
        return (
            [grads[i] for i in live],
            live,
            loss.detach(),
            [g.detach() for g in grads],
        )

    def _apply_double_backward(
        self, state: tuple, vectors: list[torch.Tensor], batched: bool
    ) -> list[Any]:
        grads, live = state[0], state[1]
        if not live:  # the gradient does not depend on the parameters: zero Hessian
            return self._zeros_like_params(vectors, batched)
        along = vectors if len(live) == len(vectors) else [vectors[i] for i in live]
        return self._parameter_products(grads, along, vectors, batched)

    # ------------------------------------------------------------------ torch.func modes
    def _functional_loss(self, primals: tuple[torch.Tensor, ...], chunk: Chunk) -> torch.Tensor:
        outputs = functional_call(
            self._model, dict(zip(self._names, primals, strict=True)), (chunk.inputs,)
        )
        return _weighted(chunk, self._checked_loss(outputs, chunk.targets))

    def _gradient_function(self, chunk: Chunk) -> Any:
        return grad(lambda primals: self._functional_loss(primals, chunk))

    def _primals(self) -> tuple[torch.Tensor, ...]:
        return tuple(p.detach() for p in self._params)

    def _build_linearize(self, chunk: Chunk) -> tuple:
        _load_forward_ad_quietly()
        # no_grad: parameters left out of ``params`` are constants, not graph inputs.
        with warnings.catch_warnings(), StableLossMode(), torch.no_grad():
            warnings.filterwarnings("ignore", message=_LINEARIZE_NOISE)
            gradient, jvp_fn = linearize(self._gradient_function(chunk), self._primals())
        return jvp_fn, gradient

    def _apply_forward_over_reverse(
        self, chunk: Chunk, vectors: list[torch.Tensor], batched: bool
    ) -> list[Any]:
        _load_forward_ad_quietly()
        gradient_function = self._gradient_function(chunk)
        primals = self._primals()

        def product(tangents: tuple[torch.Tensor, ...]) -> Any:
            """Return the Hessian applied to ``tangents``: the JVP of the gradient."""
            return jvp(gradient_function, (primals,), (tangents,))[1]

        # no_grad: parameters left out of ``params`` are constants, not graph inputs.
        with StableLossMode(), torch.no_grad():
            if batched:
                return list(vmap(product)(tuple(vectors)))
            return list(product(tuple(vectors)))

    # ------------------------------------------------------------------ finite differences
    def _apply_finite_difference(self, chunk: Chunk, vectors: list[torch.Tensor]) -> list[Any]:
        norms = torch.stack([torch.linalg.vector_norm(v) for v in vectors])
        v_norm = float(torch.linalg.vector_norm(norms))
        if v_norm == 0.0:
            return self._zeros_like_params(vectors, batched=False)
        assert self._param_norm is not None
        eps = float(torch.finfo(self.dtype).eps)
        step = eps ** (1.0 / 3.0) * (1.0 + self._param_norm) / v_norm
        plus = self._gradient_at(chunk, vectors, step)
        minus = self._gradient_at(chunk, vectors, -step)
        return [(a - b) / (2.0 * step) for a, b in zip(plus, minus, strict=True)]

    def _gradient_at(
        self, chunk: Chunk, vectors: list[torch.Tensor], step: float
    ) -> tuple[torch.Tensor, ...]:
        shifted = [
            (p.detach() + step * v).requires_grad_()
            for p, v in zip(self._params, vectors, strict=True)
        ]
        loss = self._functional_loss(tuple(shifted), chunk)
        return torch.autograd.grad(loss, shifted, allow_unused=True, materialize_grads=True)

    # ------------------------------------------------------------------ fallback
    def _handle_failure(self, error: BaseException) -> None:
        fallback = _FALLBACK[self._mode]
        if fallback is None or fallback in self._tried:
            if self._mode == "finite-difference":
                raise error
            message = (
                f"no exact Hessian-vector product mode works for this model (tried "
                f"{sorted(self._tried)}); the last error was {type(error).__name__}: {error}. "
                "mode='finite-difference' needs only first derivatives"
            )
            raise RuntimeError(message) from error
        try:  # a model or loss that fails in plain autograd is not the mode's fault
            self._fresh_loss_and_gradient()
        except Exception:
            raise error from None
        failed = self._mode
        self.release()
        self._mode = fallback
        self._tried.add(fallback)
        self._block_timings = new_block_timings()
        summary = str(error).strip().splitlines()[0] if str(error).strip() else ""
        message = (
            f"HessianOperator mode={failed!r} failed on this model ({type(error).__name__}: "
            f"{summary[:200]}); using mode={fallback!r} instead"
        )
        warnings.warn(message, ModeFallbackWarning, stacklevel=_stacklevel_outside_package())


def _double_backward_replay(grads: list[torch.Tensor], params: list[torch.Tensor]) -> Replay:
    """``x -> H x`` on flat vectors through a retained gradient graph, in one autograd call.

    The repeated product of the solvers, for one chunk of data whose gradient depends on
    every parameter: ``x`` is split into views (one C++ call, no copy) and the products are
    concatenated by one more; ``batched`` takes the rows of a ``(k, n)`` block in one
    batched call. ``None`` if a parameter got no product (the general path fills in zeros).
    (Ending the graph in the concatenated gradient, so that autograd splits ``x``, measured
    a little slower: one more node for the engine per product.)
    """
    numels = [p.numel() for p in params]
    shapes = [tuple(p.shape) for p in params]

    def replay(x: torch.Tensor, batched: bool) -> torch.Tensor | None:
        """Return ``H x`` (``batched``: the products of the rows of ``x``), or ``None``."""
        if batched:
            k = x.shape[0]
            vectors = [
                part.view((k, *shape))
                for part, shape in zip(x.split_with_sizes(numels, dim=1), shapes, strict=True)
            ]
        else:
            vectors = unflatten(x, params)
        products = torch.autograd.grad(
            grads,
            params,
            grad_outputs=vectors,
            retain_graph=True,
            allow_unused=True,
            is_grads_batched=batched,
        )
        if any(product is None for product in products):
            return None
        if batched:
            return torch.cat([product.reshape(k, -1) for product in products], dim=1)
        return flatten(products)

    return replay


def _load_forward_ad_quietly() -> None:
    """Import torch's forward-mode decompositions with their deprecation warnings silenced.

    The first forward-mode derivative in a process imports a torch module that calls the
    deprecated ``torch.jit.script``; under ``-W error`` that warning would abort the import.
    """
    global _FORWARD_AD_LOADED
    if _FORWARD_AD_LOADED:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        # A torch without this module needs nothing.
        with contextlib.suppress(ImportError):
            import torch._decomp.decompositions_for_jvp  # noqa: F401
    _FORWARD_AD_LOADED = True


_FORWARD_AD_LOADED = False


def _stacklevel_outside_package() -> int:
    """Return the ``stacklevel`` that points a warning at the first caller outside hvpseries."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith("hvpseries"):
        frame = frame.f_back
        level += 1
    return level
