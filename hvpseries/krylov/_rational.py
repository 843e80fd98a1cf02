"""|A|^-1 b, (|A| + d I)^-1 b and (A^2 + d I)^-1/2 b by quadrature and multi-shift CG on A^2."""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._core._array_api import device, epsilon
from .._core._checks import check_maxiter, check_real_pair
from .._core._result import SolveResult, Status
from .._solve._problem import Problem, finish, pose
from ._blocks import aggregate_status, column_norms, to_host
from ._multishift import MultishiftRun, multishift_solve

__all__ = ["abs_inv_rational", "quadrature_nodes"]

_VARIANTS = ("damped", "quasi-damped")
_RITZ_EVERY = 10


@dataclass(frozen=True)
class QuadratureRule:
    """A quadrature rule: shifts ``s_j`` on ``A^2`` and weights ``w_j``.

    ``f(A) b ~ sum_j w_j (A^2 + s_j I)^-1 b + rhs_weight b``; ``lower_cut`` is the ``t`` below
    which the integral was dropped (0 when the lower end was lumped into the first node).
    """

    shifts: np.ndarray
    weights: np.ndarray
    rhs_weight: float
    lower_cut: float  # t below which the integral was dropped (0 when lumped or not needed)
    step: float


def quadrature_nodes(
    *, damping: float, variant: str, lower: float, upper: float, tolerance: float
) -> QuadratureRule:
    r"""Return a quadrature rule for ``(|A| + d I)^-1`` or ``(A^2 + d I)^-1/2``.

    The rule is accurate to about ``tolerance`` (relative) for ``lower <= |lambda| <= upper``.

    Both functions are integrals over ``t in (0, inf)`` of resolvents of ``A^2``
    (see :func:`abs_inv_rational`); the substitution ``t = exp(u)`` makes the integrand
    analytic in the strip ``|Im u| < pi/2`` and exponentially decaying, so the trapezoidal
    rule with step ``h = pi^2 / log(8 / tolerance)`` has relative error about ``tolerance``.
    Nodes far above ``upper`` are summed into a multiple of ``b``; nodes far below the
    smallest scale are summed into the lowest node when a positive lower scale is known, and
    dropped (``lower_cut``) otherwise.

    Examples
    --------
    >>> rule = quadrature_nodes(damping=0.0, variant="damped", lower=0.1, upper=1.0,
    ...                         tolerance=1e-8)
    >>> 10 < rule.shifts.size < 80
    True
    """
    d = damping
    step = math.pi**2 / math.log(8.0 / tolerance)
    cube = tolerance ** (1.0 / 3.0)  # lumping a tail of relative size delta costs delta^3

    def kernel(t: np.ndarray) -> np.ndarray:
        if variant == "damped" and d > 0:
            return t * t / (t * t + d * d)
        return np.ones_like(t)

    def extra(t: np.ndarray) -> np.ndarray:
        # the shift on A^2 at node t
        return t * t + (d if variant == "quasi-damped" else 0.0)

    if variant == "quasi-damped":
        scale_low = math.sqrt(lower * lower + d)
        lump_low = scale_low > 0
    else:
        lump_low = lower > 0
        scale_low = lower if lower > 0 else d
    t_top = max(upper, math.sqrt(d) if variant == "quasi-damped" else d, scale_low) / cube
    if lump_low:
        t_bottom = cube * scale_low
    elif scale_low > 0:
        t_bottom = tolerance * scale_low
    else:
        # no lower scale at all (d = 0 and no lower bound): assume |lambda| >= upper * eps
        t_bottom = tolerance * upper * 1e-16
    if t_bottom < math.sqrt(sys.float_info.min):
        # the shifts are t^2: a (nearly) subnormal scale squares to zero, and a rule that
        # started higher would miss the small eigenvalues
        message = (
            f"the spectrum's scales (lower bound {lower:.3g}, damping {d:.3g}) are too small "
            "for float64 once squared; rescale the operator"
        )
        raise OverflowError(message)
    count = max(2, math.ceil(math.log(t_top / t_bottom) / step) + 1)
    u = math.log(t_bottom) + step * np.arange(count)
    t = np.exp(u)
    weights = (2.0 / math.pi) * step * t * kernel(t)
    # nodes above the top, summed: (A^2 + s)^-1 ~ 1 / s for s >> upper^2
    above_t = np.exp(u[-1] + step * np.arange(1, 200))
    above = (2.0 / math.pi) * step * above_t * kernel(above_t) / extra(above_t)
    rhs_weight = float(np.sum(above))
    lower_cut = 0.0
    if lump_low:
        below_t = np.exp(u[0] - step * np.arange(1, 400))
        weights[0] += float(np.sum((2.0 / math.pi) * step * below_t * kernel(below_t)))
    else:
        lower_cut = float(t[0])
    return QuadratureRule(
        shifts=extra(t), weights=weights, rhs_weight=rhs_weight, lower_cut=lower_cut, step=step
    )


def abs_inv_rational(
    A: Any,
    b: Any,
    *,
    damping: float = 0.0,
    variant: str = "damped",
    interval: tuple[float, float] | None = None,
    rtol: float = 1e-6,
    atol: float = 0.0,
    maxiter: int | None = None,
    callback: Callable[[Any], None] | None = None,
    throw: bool = False,
) -> SolveResult:
    r"""Compute ``(|A| + d I)^-1 b`` or ``(A^2 + d I)^-1/2 b`` by quadrature and multi-shift CG.

    Parameters
    ----------
    A : LinearOperator or array
        A symmetric, possibly indefinite operator of shape ``(n, n)``.
    b : array
        Right-hand side ``(n,)`` or a block ``(n, k)``.
    damping : float
        ``d >= 0``.
    variant : {"damped", "quasi-damped"}
        ``"damped"``: ``(|A| + d I)^-1 b``; ``"quasi-damped"``: ``(A^2 + d I)^-1/2 b``. With
        ``d = 0`` both are ``|A|^-1 b``.
    interval : (float, float), optional
        ``(lo, hi)`` with ``0 <= lo <= |lambda_i| <= hi`` for every eigenvalue: bounds on the
        eigenvalue *magnitudes*. If omitted, ``hi`` comes from
        :func:`hvpseries.spectral_bounds` (its matvecs are counted) and ``lo`` is unknown
        (taken as 0), see Notes.
    rtol, atol : float
        Target: error at most about ``max(rtol ||x||, atol)`` per column.
    maxiter : int, optional
        Maximum number of multi-shift CG iterations (``10 n`` by default); each costs two
        matvecs (one with ``A^2``).
    callback : callable, optional
        ``callback(xk)`` after each iteration with the current approximation (shape of ``b``).
    throw : bool
        Raise :class:`hvpseries.ConvergenceError` instead of returning an unconverged result.

    Returns
    -------
    SolveResult
        ``x``; ``error_estimate`` (per column for a block) the sum of the quadrature error
        estimate, the bound on the solve errors of the shifted systems (with the smallest Ritz
        value of ``A^2`` standing in for an unknown ``lo^2``) and the dropped lower end of the
        integral; ``n_matvec`` counts ``A`` applications (two per iteration and column, plus the
        spectral estimate); ``info``: ``num_nodes``, ``interval``, ``ritz_min`` (estimated
        ``min |lambda|``), ``variant``.

    Raises
    ------
    ValueError
        Negative damping, an unknown variant, an invalid interval or tolerances.
    OverflowError
        If the spectrum's smallest scale (``lower`` or the damping) is below about ``1e-154``,
        so that the quadrature's shifts, its squares, vanish in float64: rescale ``A``.

    Notes
    -----
    Two integral representations over resolvents of ``A^2`` (``x = lambda^2``):

    .. math::

        (x + d)^{-1/2} = \frac{2}{\pi} \int_0^\infty \frac{dt}{x + d + t^2}, \qquad
        \frac{1}{\sqrt{x} + d} = \frac{1}{\pi} \int_0^\infty
            \frac{\sqrt{s}\, ds}{(s + d^2)(s + x)}
          = \frac{2}{\pi} \int_0^\infty \frac{t^2}{t^2 + d^2} \frac{dt}{x + t^2}.

    The second is the Stieltjes representation of ``g(x) = 1/(sqrt(x) + d)``: its density is
    ``-Im g(-s + i0) / pi = sqrt(s) / (pi (s + d^2))``; it reduces to the first at ``d = 0``
    (checked numerically in the tests). With ``t = exp(u)`` the trapezoidal rule converges
    exponentially; the node count grows like ``log(hi / lo) log(1/rtol)`` (see
    :func:`quadrature_nodes`). All shifted systems ``(A^2 + s_j I) x_j = b`` are solved at once
    by multi-shift CG on ``A^2``, so the matvec count is that of CG on ``A^2 + s_min I``:
    about ``kappa(A) log(1/rtol)`` iterations of two matvecs each -- several times more than
    Lanczos on ``A`` itself (``hvpseries.krylov.funm_lanczos``), but with short recurrences
    and no stored basis.

    The smallest ``|lambda|`` cannot be bounded from below by Ritz values. Without ``lo``:
    with ``d > 0`` in the damped variant (or always in the quasi-damped one) the integrand is
    tamed by ``d`` and nothing is lost; with ``d = 0`` the integral is cut far below
    ``hi * 1e-16`` and the dropped part is estimated a posteriori from the lowest node's
    solution, ``(4/pi) t_cut k(t_cut) ||x_low||`` (large if ``A`` is singular or nearly so, which is
    then reported as ``Status.STAGNATED`` with ``info["reason"]``). Each shifted system
    stops when its share of the error, ``w_j ||r_j|| / (s_j + lambda_min^2)``, is small
    against ``rtol ||x||``; ``lambda_min^2`` is ``lo^2`` or, if larger, the smallest Ritz value
    of ``A^2`` from the CG coefficients, refreshed every 10 iterations. This stopping test is an
    estimate, not a bound, until the Ritz value has converged.

    References
    ----------
    N. Hale, N. J. Higham and L. N. Trefethen, "Computing A^alpha, log(A), and related matrix
    functions by contour integrals", SIAM J. Numer. Anal. 46 (2008).

    Examples
    --------
    >>> import numpy as np
    >>> from hvpseries import krylov
    >>> A = np.diag([-2.0, 0.5, 4.0])
    >>> result = krylov.abs_inv_rational(A, np.ones(3), damping=1.0, interval=(0.5, 4.0), rtol=1e-8)
    >>> result.status.name, np.allclose(result.x, [1 / 3, 1 / 1.5, 1 / 5], rtol=1e-7)
    ('SUCCESS', True)
    """
    problem = pose(A, b, method="abs_inv_rational", rtol=rtol, atol=atol, callback=callback)
    raw = run_abs_inv_rational(
        problem, damping=damping, variant=variant, interval=interval, maxiter=maxiter
    )
    return finish(problem, raw, throw=throw)


def run_abs_inv_rational(
    problem: Problem,
    *,
    damping: Any = 0.0,
    variant: str = "damped",
    interval: Any = None,
    maxiter: Any = None,
) -> SolveResult:
    """Run the rational method on a posed problem (see :func:`abs_inv_rational`); the raw result.

    Raises
    ------
    TypeError, ValueError
        For a bad ``maxiter``, ``damping``, ``variant`` or ``interval`` (before any matvec).
    OverflowError
        If the spectrum's scales are too small for the quadrature (see
        :func:`abs_inv_rational`).
    """
    check_maxiter(maxiter)
    d = _checked_damping(damping)
    if variant not in _VARIANTS:
        message = f"variant must be one of {_VARIANTS}, got {variant!r}"
        raise ValueError(message)
    magnitudes = None if interval is None else _checked_magnitudes(interval)
    xp, b = problem.xp, problem.b
    if not problem.finite:
        nan = xp.full(b.shape, math.nan, dtype=b.dtype, device=device(b))
        return SolveResult(x=nan, status=Status.NONFINITE, n_matvec=0, n_iter=0)
    if magnitudes is None:
        from ._spectrum import spectral_bounds

        bounds = spectral_bounds(problem.operator)
        lo, hi, spectral_matvecs = 0.0, float(bounds.max_abs), bounds.n_matvec
    else:
        (lo, hi), spectral_matvecs = magnitudes, 0
    target = max(problem.rtol, 10 * epsilon(xp, problem.operator.dtype))
    rule = quadrature_nodes(
        damping=d, variant=variant, lower=lo, upper=max(hi, lo), tolerance=0.1 * target
    )
    # a lower bound on ||f(A) b|| before anything is known: f at the top of the spectrum
    top = 1.0 / (hi + d) if variant == "damped" else 1.0 / math.sqrt(hi * hi + d)
    budget = _SolveBudget(
        rule=rule,
        rtol=problem.rtol,
        atol=problem.atol,
        lo=lo,
        floor_norms=problem.b_norms * top,
        use_ritz=d == 0 and lo == 0,
    )
    run = _solve_shifted(problem, budget, maxiter)
    Y = _quadrature_sum(xp, rule, run.x, problem.block)
    y_norms = to_host(xp, column_norms(problem.space, Y))
    ritz = np.asarray(run.ritz_min, dtype=np.float64)
    error, reason = _error_estimate(problem, budget, run, target, y_norms)
    statuses, reason = _statuses(problem, budget, run, ritz, error, y_norms, hi, reason)
    info: dict[str, Any] = {
        "variant": variant,
        "num_nodes": rule.shifts.size,
        "interval": (lo, hi),
        "ritz_min": float(np.sqrt(max(np.nanmin(ritz), 0.0)))
        if np.any(np.isfinite(ritz))
        else None,
    }
    if reason is not None:
        info["reason"] = reason
    return SolveResult(
        x=Y[:, 0] if problem.vector else Y,
        status=aggregate_status(statuses),
        n_matvec=spectral_matvecs + 2 * run.n_apply,
        n_iter=run.n_iter,
        error_estimate=float(error[0]) if problem.vector else error,
        residual_norm=None,
        info=info,
    )


@dataclass(frozen=True)
class _SolveBudget:
    """The share of the error each shifted solve may make, from ``rtol``, ``atol`` and ``lo``.

    The Ritz estimate of ``min lambda^2`` is used only where no rigorous floor exists
    (``use_ritz``: ``d = 0`` and no lower bound): elsewhere ``1 / (s_j + lo^2)`` bounds
    ``||(A^2 + s_j I)^-1||`` and is finite.
    """

    rule: QuadratureRule
    rtol: float
    atol: float
    lo: float
    floor_norms: np.ndarray  # a lower bound on ||f(A) b|| per column
    use_ritz: bool

    def floor(self, ritz_min: np.ndarray) -> np.ndarray:
        """Return the lower bound on ``lambda_min^2`` used per column."""
        if not self.use_ritz:
            return np.full(ritz_min.shape, self.lo * self.lo)
        return np.where(np.isfinite(ritz_min), np.maximum(ritz_min, 0.0), 0.0)

    def tolerances(self, ritz_min: np.ndarray, y_norms: np.ndarray) -> np.ndarray:
        """Return the residual tolerances ``(m, k)`` of the shifted systems."""
        rule = self.rule
        lowest = self.floor(ritz_min)
        floor_norms = self.floor_norms
        sizes = np.where(np.isfinite(y_norms), np.maximum(y_norms, floor_norms), floor_norms)
        budget = 0.5 * np.maximum(self.rtol * sizes, self.atol)  # half for the solves
        return (
            budget[None, :]
            * (rule.shifts[:, None] + lowest[None, :])
            / (rule.weights[:, None] * rule.shifts.size)
        )


def _quadrature_sum(xp: Any, rule: QuadratureRule, X: Any, B: Any) -> Any:
    """Return ``sum_j w_j X[j] + rhs_weight B``, the quadrature's approximation."""
    w = xp.asarray(rule.weights, dtype=X.dtype, device=device(X))[:, None, None]
    return xp.sum(w * X, axis=0) + rule.rhs_weight * B


def _solve_shifted(problem: Problem, budget: _SolveBudget, maxiter: int | None) -> MultishiftRun:
    """Solve all ``(A^2 + s_j I) x_j = b`` of the rule by multi-shift CG on ``A^2``."""
    operator, xp, B, rule = problem.operator, problem.xp, problem.block, budget.rule
    callback, vector = problem.callback, problem.vector

    def square(V: Any) -> Any:
        return operator.matmat(operator.matmat(V))

    def report(X: Any) -> None:
        Y = _quadrature_sum(xp, rule, X, B)
        callback(Y[:, 0] if vector else Y)

    return multishift_solve(
        square,
        B,
        rule.shifts,
        rhs_norms=problem.b_norms,
        tol=budget.tolerances,
        maxiter=10 * operator.global_shape[0] if maxiter is None else int(maxiter),
        callback=None if callback is None else report,
        verify=True,  # the true residuals: the lowest shifts can be singular to working precision
        ritz_every=_RITZ_EVERY,
        weights=rule.weights,
        rhs_weight=rule.rhs_weight,
        space=problem.space,
    )


def _error_estimate(
    problem: Problem,
    budget: _SolveBudget,
    run: MultishiftRun,
    target: float,
    y_norms: np.ndarray,
) -> tuple[np.ndarray, str | None]:
    """Return the error estimate per column (quadrature, shifted solves, dropped lower end).

    The reason, or None, says why the dropped lower end alone misses the tolerance.
    """
    rule = budget.rule
    lowest = budget.floor(np.asarray(run.ritz_min, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        solve_error = np.sum(
            rule.weights[:, None] * run.residual / (rule.shifts[:, None] + lowest[None, :]),
            axis=0,
        )
    solve_error = np.where(np.isfinite(solve_error), solve_error, np.inf)
    error = 0.1 * target * y_norms + solve_error
    reason = None
    if rule.lower_cut > 0:
        low_norms = to_host(problem.xp, column_norms(problem.space, run.x[0, ...]))
        # int_0^t_cut of the integrand is at most about 2 t_cut times its value at t_cut
        dropped = (2.0 / rule.step) * rule.weights[0] * low_norms
        error = error + dropped
        if np.any(dropped > 0.5 * np.maximum(problem.rtol * y_norms, problem.atol)):
            reason = (
                "the integral's lower end matters: A has eigenvalues near 0 (or is singular); "
                "pass interval=(lo, hi) with lo <= min |lambda|, or use damping > 0"
            )
    return error, reason


def _statuses(
    problem: Problem,
    budget: _SolveBudget,
    run: MultishiftRun,
    ritz: np.ndarray,
    error: np.ndarray,
    y_norms: np.ndarray,
    hi: float,
    reason: str | None,
) -> tuple[list[Status], str | None]:
    """Return the status of each column, judged by the total error estimate, and the reason."""
    rtol, atol = problem.rtol, problem.atol
    eps = epsilon(problem.xp, problem.operator.dtype)
    # The shifted systems' true residuals are in the error estimate; a shift that missed its
    # own share of the budget is judged by the total below, not on its own.
    shift_status = [
        [Status.SUCCESS if s is Status.STAGNATED else s for s in run.status[:, j]]
        for j in range(run.status.shape[1])
    ]
    statuses = [aggregate_status(column) for column in shift_status]
    if Status.INDEFINITE in statuses:
        # A^2 + s_min I is positive semi-definite: zero curvature means A is singular
        statuses = [Status.STAGNATED if s is Status.INDEFINITE else s for s in statuses]
        reason = "A is singular to working precision; use damping > 0"
    singular = budget.use_ritz and bool(np.any(ritz <= 100.0 * eps * hi * hi))
    if singular and any(not s.converged for s in statuses):
        # A Ritz value of A^2 at the rounding level of its largest eigenvalue: the lowest
        # shifted systems are singular to working precision, so their solves cannot converge.
        reason = reason or "A is singular to working precision; use damping > 0"
    for j, total in enumerate(error):
        if statuses[j] is Status.SUCCESS and not total <= max(rtol * y_norms[j], atol):
            statuses[j] = Status.STAGNATED
            reason = reason or (
                "the error estimate misses the tolerance: without damping and without a lower "
                "bound on |lambda|, A may be singular or nearly so; use damping > 0 or pass "
                "interval=(lo, hi)"
                if budget.use_ritz
                else "the error estimate misses the tolerance at the precision limit"
            )
    return statuses, reason


def _checked_damping(damping: Any) -> float:
    if isinstance(damping, bool) or not isinstance(damping, numbers.Real):
        message = f"damping must be a real number, got {damping!r}"
        raise TypeError(message)
    if not (math.isfinite(damping) and damping >= 0):
        message = f"damping must be finite and >= 0, got {damping!r}"
        raise ValueError(message)
    return float(damping)


def _checked_magnitudes(interval: Any) -> tuple[float, float]:
    lo, hi = check_real_pair(interval, "interval")
    if not (0 <= lo <= hi and hi > 0):
        message = (
            f"interval bounds the eigenvalue magnitudes: need 0 <= lo <= hi, hi > 0, finite; "
            f"got {interval!r}"
        )
        raise ValueError(message)
    return lo, hi
