"""The scale factor ``V`` of the series: user value, lower bound, paper rule or Lanczos bound."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._core._array_api import device, epsilon
from .._solve._problem import Problem
from ..krylov._spectrum import spectral_bounds
from ._engine import trivial_rhs

__all__ = ["ScaleChoice", "choose_scale"]

#: Lanczos steps spent on ``scale="auto"`` (counted in ``n_matvec``).
AUTO_MATVECS = 20
#: The paper's initial scale ``V_0``.
PAPER_INITIAL_SCALE = 100.0


@dataclass(frozen=True)
class ScaleChoice:
    """The scale ``V`` and how it was obtained."""

    value: float
    source: str  # "user", "lower_bound", "paper", "auto", "not needed"
    n_matvec: int = 0
    first_product: Any = None  # M b, when it was computed to get the scale
    bounds: Any = None  # SpectralBounds of "auto"
    negative: bool = False  # "auto" proved an eigenvalue of M below zero


def _ratio_bound(problem: Problem, apply: Callable[[Any], Any]) -> tuple[float, Any]:
    """``max_j ||M b_j|| / ||b_j||`` over the nonzero columns (a lower bound on lambda_max(M)).

    ``||b_j||`` are the problem's norms, in the dtype of ``||M b_j||`` (which is that of
    ``||b_j||``: exact, the host norms are that dtype's values).
    """
    xp, b = problem.xp, problem.b
    product = apply(b)
    top = problem.space.norm(product)
    norms = float(problem.b_norms[0]) if b.ndim == 1 else problem.b_norms.tolist()
    bottom = xp.asarray(norms, dtype=top.dtype, device=device(top))
    ratios = xp.where(bottom > 0, top / xp.where(bottom > 0, bottom, 1.0), 0.0)
    return float(xp.max(ratios)), product


def choose_scale(
    problem: Problem,
    scale: Any,
    *,
    apply: Callable[[Any], Any],
    squared: bool,
    shift: float,
    paper: bool = False,
) -> ScaleChoice:
    """Return the scale ``V`` for the series operator ``M + shift I`` of ``problem``.

    ``M = A^2`` when ``squared`` (``abs_inv``), else ``M = A``. ``apply`` applies ``M``. A
    zero or non-finite ``b`` needs no scale (1, ``"not needed"``, no matvec).
    """
    if trivial_rhs(problem):
        return ScaleChoice(1.0, "not needed")
    operator = problem.operator
    if paper:
        previous = PAPER_INITIAL_SCALE if scale == "auto" else scale
        previous = 0.0 if previous == "lower_bound" else float(previous)
        estimate, product = _ratio_bound(problem, apply)
        value = max(previous, estimate + shift)
        return ScaleChoice(_positive(value, shift), "paper", 0, product)
    if scale == "lower_bound":
        estimate, product = _ratio_bound(problem, apply)
        return ScaleChoice(_positive(estimate + shift, shift), "lower_bound", 0, product)
    if scale != "auto":
        return ScaleChoice(float(scale), "user")
    # One Lanczos run on A, whatever the number of right-hand sides.
    bounds = spectral_bounds(operator, num_matvecs=AUTO_MATVECS, seed=0)
    ritz = np.asarray(bounds.ritz_values, dtype=np.float64)
    # Convergence needs V >= lambda_max(M) / 2 and is fastest for the smallest such V; the
    # extreme Ritz value (an inner bound, within a few percent of lambda_max after 20 steps)
    # is tight, and the outer bound U >= lambda_max guarantees V >= U^2 / 2 >= lambda_max^2 / 2.
    margin = 1.0 + 1e-3
    if squared:
        inner = float(np.max(np.abs(ritz))) ** 2 + shift
        value = max(inner, margin * (bounds.max_abs**2 + shift) / 2)
        return ScaleChoice(_positive(value, shift), "auto", bounds.n_matvec, None, bounds)
    lower, upper = bounds.lower + shift, bounds.upper + shift
    smallest_ritz = float(np.min(ritz)) + shift
    rounding = 100.0 * epsilon(operator.xp, operator.dtype) * max(bounds.max_abs, abs(shift))
    negative = smallest_ritz < -rounding or upper <= 0
    if lower > 0:
        # A positive enclosure [lower, upper]: its midpoint gives the optimal rate.
        value = (lower + upper) / 2
    else:
        value = max(float(np.max(ritz)) + shift, margin * upper / 2)
    return ScaleChoice(_positive(value, shift), "auto", bounds.n_matvec, None, bounds, negative)


def _positive(value: float, shift: float) -> float:
    """Guard against a zero scale (zero operator, b in its null space)."""
    if value > 0 and math.isfinite(value):
        return value
    return shift if shift > 0 else 1.0
