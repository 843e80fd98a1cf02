"""f(A) b by a Chebyshev expansion of f on an interval enclosing the spectrum."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.fft

from .._core._checks import check_positive_int, check_real_pair
from .._core._in_place import add_scaled_
from .._core._result import SolveResult, Status
from .._core._scalar_function import checked_scalar_function
from .._solve._problem import Problem, finish, pose
from ._blocks import column_norms, to_host

__all__ = ["chebyshev_coefficients", "funm_chebyshev"]

_MIN_NODES = 64
_MAX_NODES = 2**17
# a column whose T_j(A) b grows beyond this factor of ||b|| reveals a spectrum outside the
# interval (|T_j| <= 1 on [-1, 1], so inside the interval ||T_j(A) b|| <= ||b||)
_GROWTH_LIMIT = 1.01
_DEFAULT_MAX_DEGREE = 10_000


def chebyshev_coefficients(
    f: Callable[[np.ndarray], Any], interval: tuple[float, float], num_nodes: int
) -> np.ndarray:
    """Chebyshev coefficients of ``f`` on ``interval`` from ``num_nodes`` Chebyshev-Gauss nodes.

    ``f(lo + (hi - lo) (x + 1) / 2) ~ sum_j c_j T_j(x)``; computed on the host with NumPy by a
    type-II DCT (interpolation at the roots of ``T_num_nodes``). The first coefficients are
    accurate up to the aliasing error ``~ sum_{j >= num_nodes} |c_j|``.

    Examples
    --------
    >>> import numpy as np
    >>> c = chebyshev_coefficients(lambda t: t**2, (-1.0, 1.0), 8)
    >>> np.round(c[:4], 12) + 0.0
    array([0.5, 0. , 0.5, 0. ])
    """
    lo, hi = interval
    theta = np.pi * (np.arange(num_nodes) + 0.5) / num_nodes
    points = lo + (hi - lo) * (np.cos(theta) + 1.0) / 2.0
    values = np.asarray(f(points), dtype=np.float64)
    if values.shape != points.shape:
        values = np.broadcast_to(values, points.shape)
    coefficients = scipy.fft.dct(values, type=2) / num_nodes
    coefficients[0] /= 2.0
    return coefficients


def _resolved_coefficients(
    f: Callable[[np.ndarray], Any], interval: tuple[float, float], rtol: float, minimum_nodes: int
) -> np.ndarray:
    """Coefficients with enough nodes that the last quarter is negligible against ``rtol``."""
    num_nodes = max(_MIN_NODES, minimum_nodes)
    while True:
        coefficients = chebyshev_coefficients(f, interval, num_nodes)
        magnitude = np.abs(coefficients)
        # the smallest |f| on the interval (sampled): the scale of the smallest possible answer
        lo, hi = interval
        sample = np.abs(np.asarray(f(np.linspace(lo, hi, 257)), dtype=np.float64))
        if not (np.all(np.isfinite(coefficients)) and np.all(np.isfinite(sample))):
            message = (
                "f returned non-finite values on the interval; f must be finite on the whole "
                f"interval {interval} (for 1/|t| use an interval that excludes 0, or damping)"
            )
            raise ValueError(message)
        scale = max(float(np.min(sample)), 1e-15 * float(magnitude.max()))
        if np.sum(magnitude[3 * num_nodes // 4 :]) <= 1e-2 * rtol * scale or (
            num_nodes >= _MAX_NODES
        ):
            return coefficients
        num_nodes *= 2


def funm_chebyshev(
    A: Any,
    b: Any,
    f: Callable[[np.ndarray], Any],
    *,
    interval: tuple[float, float],
    degree: int | None = None,
    rtol: float = 1e-6,
    atol: float = 0.0,
    maxiter: int | None = None,
    callback: Callable[[Any], None] | None = None,
    throw: bool = False,
) -> SolveResult:
    r"""Compute ``f(A) b`` by a Chebyshev expansion of ``f`` on ``interval``.

    Parameters
    ----------
    A : LinearOperator or array
        A symmetric operator of shape ``(n, n)`` whose spectrum lies in ``interval``.
    b : array
        Right-hand side ``(n,)`` or a block ``(n, k)`` (one ``matmat`` per degree).
    f : callable
        A scalar function, called on the host with a NumPy array of points and returning an
        array of the same shape, e.g. ``lambda t: 1 / np.sqrt(t)``. It must be finite on the
        interval; the smoother it is there, the lower the degree.
    interval : (float, float)
        ``(lo, hi)`` with ``lo < hi``: an interval that **encloses the spectrum** of ``A``,
        for example from :func:`hvpseries.spectral_bounds`. See Notes for what happens
        otherwise.
    degree : int, optional
        A fixed polynomial degree (a fixed budget of ``degree`` matvecs per column: the status is
        ``COMPLETED`` and ``rtol``/``atol`` are not used for stopping). By default the degree
        is chosen during the run from the decay of the coefficients, see Notes.
    rtol, atol : float
        Stop at the first degree whose error bound is at most
        ``max(rtol ||p(A) b||, atol)`` per column.
    maxiter : int, optional
        The largest degree to use when ``degree`` is None (``max(10 n, 10000)`` by default).
    callback : callable, optional
        ``callback(yk)`` after each degree with the current approximation (shape of ``b``).
    throw : bool
        Raise :class:`hvpseries.ConvergenceError` instead of returning an unconverged result.

    Returns
    -------
    SolveResult
        ``x`` ~ ``f(A) b``; ``error_estimate`` the bound ``||b|| sum_{j > d} |c_j|`` (per
        column for a block); ``n_iter`` the degree ``d``; ``n_matvec = d k``;
        ``info["degree"]``, ``info["interval"]``.

    Raises
    ------
    ValueError
        For an invalid interval, ``f`` non-finite on the interval, or invalid tolerances.

    Notes
    -----
    With ``t(A) = (2 A - (lo + hi) I) / (hi - lo)``, the expansion
    ``f(A) b ~ p_d(A) b = sum_{j <= d} c_j T_j(t(A)) b`` is evaluated with the three-term
    recurrence ``T_{j+1} = 2 t(A) T_j - T_{j-1}``: one matvec per degree and no inner
    products (the norms used by the stopping test are taken only at degrees 1, 2, 4, 8, ...
    and at the predicted stopping degree, so a GPU is synchronised O(log d) times).
    The coefficients ``c_j`` are computed once on the host from Chebyshev-Gauss nodes (a DCT)
    with enough nodes that aliasing is negligible. Since ``|T_j| <= 1`` on ``[-1, 1]``, the
    error is bounded by ``||b|| sum_{j > d} |c_j|`` whenever the spectrum lies in the interval;
    the degree ``d`` is the first at which this bound falls below ``max(rtol ||p_d(A) b||,
    atol)``. It grows like ``sqrt(kappa) log(1/rtol)`` for ``f(t) = t^-1/2`` on
    ``[lo, hi]``, ``kappa = hi / lo``: the optimal Krylov rate, with a fixed polynomial.

    **If the interval does not enclose the spectrum**, the Chebyshev polynomials grow
    exponentially at the eigenvalues outside it and the result is wrong. This is detected
    cheaply: ``||T_j(t(A)) b|| <= ||b||`` must hold, and a growth beyond 1% stops the run with
    ``Status.DIVERGED`` (``info["reason"]`` explains). Eigenvalues only slightly outside may
    go unnoticed but then also do little harm (the polynomial is still close to ``f`` there
    when ``f`` extends smoothly).

    References
    ----------
    L. N. Trefethen, *Approximation Theory and Approximation Practice*, SIAM (2013), ch. 3-8.

    Examples
    --------
    >>> import numpy as np
    >>> from hvpseries import krylov
    >>> A = np.diag([1.0, 2.0, 4.0])
    >>> result = krylov.funm_chebyshev(A, np.ones(3), lambda t: 1 / np.sqrt(t), interval=(0.5, 5.0),
    ...                         rtol=1e-10)
    >>> result.status.name, np.allclose(result.x, [1.0, 2**-0.5, 0.5])
    ('SUCCESS', True)
    """
    problem = pose(A, b, method="funm_chebyshev", rtol=rtol, atol=atol, callback=callback)
    raw = run_funm_chebyshev(problem, f, interval=interval, degree=degree, maxiter=maxiter)
    return finish(problem, raw, throw=throw)


def run_funm_chebyshev(
    problem: Problem,
    f: Callable[[np.ndarray], Any],
    *,
    interval: Any,
    degree: Any = None,
    maxiter: Any = None,
) -> SolveResult:
    """Run the Chebyshev expansion on a posed problem (see :func:`funm_chebyshev`); raw result.

    Raises
    ------
    TypeError, ValueError
        For a bad ``degree``, ``maxiter``, ``f`` or ``interval``, or ``f`` non-finite on the
        interval (before any matvec).
    """
    check_positive_int(degree, "degree", allow_none=True)
    check_positive_int(maxiter, "maxiter", allow_none=True)
    f = checked_scalar_function(f)
    lo, hi = _checked_interval(interval)
    expansion = _expansion(problem, f, (lo, hi), degree=degree, maxiter=maxiter)
    outcome = _evaluate(problem, expansion)
    error = expansion.tail[min(outcome.degree, expansion.tail.size - 1)] * problem.b_norms
    info: dict[str, Any] = {
        "degree": outcome.degree,
        "interval": (lo, hi),
        "num_coefficients": expansion.coefficients.size,
    }
    if outcome.reason is not None:
        info["reason"] = outcome.reason
    Y = outcome.value
    return SolveResult(
        x=Y[:, 0] if problem.vector else Y,
        status=outcome.status,
        n_matvec=outcome.n_matvec,
        n_iter=outcome.degree,
        error_estimate=float(error[0]) if problem.vector else error,
        info=info,
    )


@dataclass(frozen=True)
class _Expansion:
    """The Chebyshev coefficients of ``f`` on the interval, and the degree to go up to.

    ``tail[d] = sum_{j > d} |c_j|`` plus the last quarter again as an aliasing allowance;
    ``fixed``: the degree was given (a fixed budget, no stopping test).
    """

    coefficients: np.ndarray
    tail: np.ndarray
    final_degree: int
    fixed: bool
    interval: tuple[float, float]


def _expansion(
    problem: Problem,
    f: Callable[[np.ndarray], Any],
    interval: tuple[float, float],
    *,
    degree: int | None,
    maxiter: int | None,
) -> _Expansion:
    """Return the coefficients (on the host) and the largest degree of the run."""
    if degree is not None:
        coefficients = _resolved_coefficients(
            f, interval, max(problem.rtol, 1e-15), minimum_nodes=2 * degree + 2
        )
        final_degree = degree
    else:
        coefficients = _resolved_coefficients(f, interval, max(problem.rtol, 1e-15), _MIN_NODES)
        n = problem.operator.global_shape[0]
        limit = max(10 * n, _DEFAULT_MAX_DEGREE) if maxiter is None else maxiter
        final_degree = min(coefficients.size - 1, limit)
    magnitude = np.abs(coefficients)
    aliasing = np.sum(magnitude[3 * magnitude.size // 4 :])
    tail = np.concatenate([np.cumsum(magnitude[::-1])[::-1][1:], [0.0]]) + aliasing
    return _Expansion(
        coefficients=coefficients,
        tail=tail,
        final_degree=final_degree,
        fixed=degree is not None,
        interval=interval,
    )


@dataclass(frozen=True)
class _Outcome:
    """Where the three-term recurrence stopped: ``p_d(A) b`` as a block, and why."""

    value: Any
    degree: int
    status: Status
    reason: str | None
    n_matvec: int


def _evaluate(problem: Problem, expansion: _Expansion) -> _Outcome:
    """Sum ``c_j T_j(t(A)) b`` degree by degree until the bound meets the tolerance.

    The norms of the stopping test are taken at degrees 1, 2, 4, ..., at the predicted
    stopping degree and at the last one.
    """
    operator, B, callback = problem.operator, problem.block, problem.callback
    xp, space, k = problem.xp, problem.space, problem.block.shape[1]
    coefficients, tail = expansion.coefficients, expansion.tail
    final_degree = expansion.final_degree
    lo, hi = expansion.interval
    scale = 2.0 / (hi - lo)
    center = (hi + lo) / (hi - lo)

    def recurrence(V: Any, factor: float, previous: Any) -> Any:
        # factor t(A) V - previous with t(A) = scale A - center I, in a new array updated in
        # place (the product may be a buffer the operator reuses: only read)
        W = operator.matmat(V) * (factor * scale)
        W = add_scaled_(W, V, -factor * center)
        return W if previous is None else add_scaled_(W, previous, -1.0)

    status = Status.COMPLETED if expansion.fixed else Status.MAX_ITERATIONS
    reason = None
    T_previous = B
    Y = float(coefficients[0]) * B
    d = 0
    next_check = 1
    n_matvec = 0
    if not expansion.fixed and np.all(tail[0] * problem.b_norms <= problem.atol):
        status = Status.SUCCESS
        final_degree = 0
    T_current = B
    while d < final_degree:
        d += 1
        if d == 1:
            T_current = recurrence(B, 1.0, None)
        else:
            T_previous, T_current = T_current, recurrence(T_current, 2.0, T_previous)
        n_matvec += k
        if callback is None:
            Y = add_scaled_(Y, T_current, float(coefficients[d]))  # Y is ours: a new array
        else:  # the callback may keep the iterates it is given
            Y = Y + float(coefficients[d]) * T_current
        if callback is not None:
            callback(Y[:, 0] if problem.vector else Y)
        if d != next_check and d != final_degree:
            continue
        norms = to_host(xp, xp.concat([column_norms(space, Y), column_norms(space, T_current)]))
        y_norms, t_norms = norms[:k], norms[k:]
        stop = _breakdown(norms, t_norms, problem.b_norms, d, expansion.interval)
        if stop is not None:
            status, reason = stop
            break
        if expansion.fixed:
            next_check = min(2 * next_check, final_degree)
            continue
        targets = np.maximum(problem.rtol * y_norms, problem.atol)
        needed = _needed_degree(tail, problem.b_norms, targets)
        if needed <= d:
            status = Status.SUCCESS
            break
        next_check = min(2 * next_check, needed, final_degree) if needed > d else d + 1
        next_check = max(next_check, d + 1)
    return _Outcome(value=Y, degree=d, status=status, reason=reason, n_matvec=n_matvec)


def _breakdown(
    norms: np.ndarray,
    t_norms: np.ndarray,
    rhs_norms: np.ndarray,
    d: int,
    interval: tuple[float, float],
) -> tuple[Status, str] | None:
    """Return the status and reason that stop the run at degree ``d``, or None to go on.

    ``norms``: those of ``p_d(A) b`` and ``T_d(t(A)) b`` per column (``t_norms``, the latter);
    a non-finite one, or a ``T_d(t(A)) b`` that grew beyond ``||b||``, stops it.
    """
    if not np.all(np.isfinite(norms)):
        return Status.NONFINITE, "non-finite values in the iteration"
    if np.any(t_norms > _GROWTH_LIMIT * rhs_norms):
        reason = (
            f"||T_{d}(A) b|| exceeds ||b||: the spectrum of A is not inside the interval "
            f"{interval}; widen it (e.g. from hvpseries.spectral_bounds)"
        )
        return Status.DIVERGED, reason
    return None


def _needed_degree(tail: np.ndarray, rhs_norms: np.ndarray, targets: np.ndarray) -> int:
    """Return the first degree at which every column's bound meets its target."""
    return max(
        int(np.argmax(tail * norm_b <= target)) if np.any(tail * norm_b <= target) else tail.size
        for norm_b, target in zip(rhs_norms, targets, strict=True)
    )


def _checked_interval(interval: Any) -> tuple[float, float]:
    lo, hi = check_real_pair(interval, "interval")
    if not lo < hi:
        message = f"interval must be finite with lo < hi, got {interval!r}"
        raise ValueError(message)
    return lo, hi
