"""LazySFN: saddle-free Newton with a low-rank ``|H|`` reused across steps."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from .._core._checks import check_positive_int
from .._core._result import SolveResult, Status
from .._operators._base import LinearOperator
from ..krylov._lanczos import run_lanczos
from ._base import SaddleFreeNewton, _check_number

__all__ = ["LazySFN"]


class LazySFN(SaddleFreeNewton):
    r"""Saddle-free Newton whose curvature is built every few steps and reused in between.

    A *refresh* runs ``rank`` Lanczos steps on the Hessian from the current gradient (``rank``
    HVPs, fully reorthogonalised) and keeps the Ritz pairs ``(theta_i, w_i)``: the Krylov
    subspace's saddle-free Newton model (Dauphin et al. 2014), which holds the extreme
    curvatures of both signs. Every step, refresh or not, applies

    .. math:: u = W (|\Theta| + \delta)^{-1} W^T g + \frac{(I - W W^T) g}{\sigma + \delta},
       \qquad \sigma = \max_i |\theta_i|, \quad \delta = \max(d, c\, \sigma),

    to its own fresh gradient ``g``: the Newton step where the curvature is known, and a
    gradient step of length ``1 / (sigma + delta)`` (safe for every curvature up to the
    largest known) in the rest. The damping applied, ``delta``, is the Levenberg-Marquardt
    damping ``d`` but at least ``c = relative_damping_min`` times the largest curvature, so a
    model built on one batch never amplifies a direction more than ``1 / c`` times the
    strongest one: with ``d`` left to decay to ``damping_min``, steps along Ritz values near
    zero overshot on the next batches (digits: the training loss oscillated between ``3e-4``
    and ``0.1``). A step between refreshes costs one gradient, one loss evaluation
    and ``O(n rank)`` vector work; the learning rate, momentum, Levenberg-Marquardt damping
    and step rejection are those of :class:`SeriesSFN` and :class:`KrylovSFN` (the lazy
    Hessian idea of Doikov, Chayti and Jaggi, ICML 2023, with the low-rank model in place of
    the full Hessian).

    Parameters
    ----------
    params : iterable of tensors or one parameter group
        As for :class:`SeriesSFN`.
    rank : int, default 20
        Lanczos steps (HVPs) per refresh, the rank of the curvature model (fewer after a
        breakdown, when the gradient's Krylov space is invariant).
    refresh_every : int, default 20
        Steps between scheduled refreshes (``1`` refreshes every step: Krylov-subspace SFN).
    damping : float, default 1.0
        Initial damping ``d >= 0``.
    relative_damping_min : float, default 0.03
        The floor ``c`` of the applied damping, as a fraction of ``max|theta|`` (``0``: the
        damping ``d`` alone).
    stale_ratio : float, default 0.0
        Staleness test: a step whose loss change is below ``stale_ratio`` times the model's
        predicted decrease (by default: a loss that rose), or that was rejected or skipped,
        refreshes the curvature at the next step, before the schedule; ``-inf`` refreshes on
        the schedule only.
    adaptive, lr, momentum, damping_factor, damping_min, damping_max
        As for :class:`SeriesSFN`.
    reject_increase : bool, default True
        As for :class:`KrylovSFN`.

    Notes
    -----
    ``counters["refresh"]`` counts the refreshes. The model is refreshed too when the set of
    parameters that require gradients changes. A refresh is one Krylov solve of the current
    batch's Hessian, so the model reflects that batch: the curvature, like the gradient, is
    a sample, and the staleness test catches a model that stopped predicting the loss. The
    Ritz vectors (``n x rank``) are part of the state and of :meth:`state_dict`.

    Examples
    --------
    >>> import torch
    >>> from hvpseries.optim import LazySFN
    >>> x = torch.tensor([1.0, 1.0], dtype=torch.float64, requires_grad=True)
    >>> weights = torch.tensor([2.0, -1.0], dtype=torch.float64)
    >>> loss = lambda: (weights * x**2).sum() + (x**4).sum()
    >>> optimizer = LazySFN([x], damping=0.1, rank=2, refresh_every=5)
    >>> for _ in range(30):
    ...     _ = optimizer.step(loss)
    >>> bool(loss() < -0.2)  # escaped the saddle direction to the minimum at -0.25
    True
    """

    def __init__(
        self,
        params: Iterable[Any],
        *,
        rank: int = 20,
        refresh_every: int = 20,
        damping: float = 1.0,
        relative_damping_min: float = 0.03,
        stale_ratio: float = 0.0,
        adaptive: bool = True,
        lr: float | None = None,
        momentum: float | None = None,
        damping_factor: float = 0.9,
        damping_min: float = 1e-8,
        damping_max: float = 1e4,
        reject_increase: bool = True,
    ) -> None:
        check_positive_int(rank, "rank")
        check_positive_int(refresh_every, "refresh_every")
        if isinstance(stale_ratio, bool) or not isinstance(stale_ratio, numbers.Real):
            message = f"stale_ratio must be a real number below 1, got {stale_ratio!r}"
            raise TypeError(message)
        if math.isnan(stale_ratio) or not stale_ratio < 1:
            message = (
                f"stale_ratio must be below 1 (-inf: refresh on schedule only), got {stale_ratio!r}"
            )
            raise ValueError(message)
        super().__init__(
            params,
            damping=damping,
            adaptive=adaptive,
            lr=lr,
            momentum=momentum,
            damping_factor=damping_factor,
            damping_min=damping_min,
            damping_max=damping_max,
            reject_increase=reject_increase,
        )
        self._rank = rank
        self._refresh_every = refresh_every
        self._stale_ratio = float(stale_ratio)
        self._relative_damping_min = _check_number(
            relative_damping_min, "relative_damping_min", low=0.0
        )

    def _initial_state(self, state: dict[str, Any]) -> None:
        state.update(
            ritz_vectors=None,
            ritz_values=None,
            curvature_trainable=None,
            curvature_age=0,
            stale=True,
            n_refresh=0,
        )

    @property
    def counters(self) -> dict[str, int]:
        """Work done so far: those of :class:`SeriesSFN` and ``refresh`` (curvature builds)."""
        return {**super().counters, "refresh": self._state["n_refresh"]}

    def _needs_curvature(self, state: dict[str, Any]) -> bool:
        return (
            state["stale"]
            or state["curvature_age"] >= self._refresh_every
            or state["curvature_trainable"] != state["trainable"]
        )

    def _direction(
        self,
        hessian: LinearOperator | None,
        gradient: torch.Tensor,
        damping: float,
        state: dict[str, Any],
    ) -> tuple[torch.Tensor, Any]:
        n_matvec = 0
        if self._needs_curvature(state):
            assert hessian is not None  # the base class builds it when asked to
            if not bool(torch.any(gradient != 0)):  # a stationary point: nothing to build from
                state["stale"] = True
                return torch.zeros_like(gradient), _result(torch.zeros_like(gradient), 0, 0)
            n_matvec = self._refresh(hessian, gradient, state)
        vectors, values = state["ritz_vectors"], state["ritz_values"]
        known, rest = _inverse_curvatures(values, damping, self._relative_damping_min)
        coefficients = (known - rest) * torch.mv(vectors.T, gradient)
        direction = torch.addmv(gradient * rest, vectors, coefficients)
        state["curvature_age"] += 1
        return direction, _result(direction, n_matvec, values.numel())

    def _refresh(
        self, hessian: LinearOperator, gradient: torch.Tensor, state: dict[str, Any]
    ) -> int:
        # rank Lanczos steps from g: the Ritz pairs of the gradient's Krylov space.
        decomposition = run_lanczos(hessian, gradient, self._rank, reorthogonalize="full")
        m = decomposition.num_steps
        tridiagonal = decomposition.tridiagonal
        values, vectors = np.linalg.eigh(tridiagonal)
        rotation = torch.as_tensor(vectors, dtype=gradient.dtype, device=gradient.device)
        state["ritz_vectors"] = decomposition.basis[:, :m] @ rotation
        state["ritz_values"] = torch.as_tensor(values, dtype=gradient.dtype, device=gradient.device)
        state["curvature_trainable"] = state["trainable"]
        state["curvature_age"] = 0
        state["stale"] = False
        state["n_refresh"] += 1
        return decomposition.n_matvec

    def _adapt_damping(
        self, group: dict[str, Any], state: dict[str, Any], *, reduction_ratio: float
    ) -> None:
        # The staleness test: the model's prediction failed (or the step was undone).
        if not reduction_ratio >= self._stale_ratio:
            state["stale"] = True
        super()._adapt_damping(group, state, reduction_ratio=reduction_ratio)


def _inverse_curvatures(
    values: torch.Tensor, damping: float, relative_floor: float
) -> tuple[torch.Tensor, float]:
    # 1 / (|theta_i| + delta) and 1 / (sigma + delta), delta = max(d, c sigma); at delta = 0
    # the pseudo-inverse: curvatures at the rounding level of the largest count as 0.
    magnitudes = values.abs()
    largest = float(magnitudes.max())
    damping = max(damping, relative_floor * largest)
    if damping > 0:
        return torch.reciprocal(magnitudes + damping), 1.0 / (largest + damping)
    cutoff = values.numel() * torch.finfo(values.dtype).eps * largest
    if not largest > cutoff:
        return torch.zeros_like(magnitudes), 0.0
    known = torch.where(magnitudes > cutoff, 1.0 / magnitudes.clamp_min(cutoff), 0.0)
    return known, 1.0 / largest


def _result(direction: torch.Tensor, n_matvec: int, rank: int) -> SolveResult:
    # The low-rank model is applied exactly: the direction is what the model defines.
    return SolveResult(
        x=direction,
        status=Status.SUCCESS,
        n_matvec=n_matvec,
        n_iter=1,
        info={"method": "low-rank", "refreshed": n_matvec > 0, "rank": int(rank)},
    )
