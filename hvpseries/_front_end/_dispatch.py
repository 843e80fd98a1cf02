"""The front end's method registry: each method run on a posed problem, its result stamped.

The public functions of ``_functions`` pose a problem once and call one of these runners;
each returns the method's raw result with ``info["method"]`` set, for ``finish``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .._core._result import SolveResult
from .._dense._eigh import is_small_dense, run_dense
from .._solve._problem import Problem, nonfinite_result

__all__ = ["finished_hooks", "run_chebyshev", "run_funm", "run_squared", "stamped"]


def finished_hooks(problem: Problem, result: SolveResult, *, iterates: bool) -> None:
    """Call the hooks once at the end of a method that does not report progress.

    ``iterates``: the method does not call ``callback(xk)`` either.
    """
    if iterates and problem.callback is not None:
        problem.callback(result.x)
    if problem.progress is not None:
        problem.progress(result.n_matvec, result.error_estimate)


def stamped(result: SolveResult, method: str, **extra: Any) -> SolveResult:
    """Record the method used (and the front end's parameters) in ``info``."""
    return dataclasses.replace(result, info={**dict(result.info), "method": method, **extra})


def run_funm(
    problem: Problem,
    f: Callable[[np.ndarray], np.ndarray],
    method: str,
    *,
    maxiter: int | None,
    chebyshev_interval: Callable[[], tuple[float, float]] | None = None,
    lanczos_options: Mapping[str, Any] | None = None,
) -> SolveResult:
    """Run ``f(A) b`` by Lanczos, Chebyshev or a dense ``eigh``; the raw, stamped result.

    ``lanczos_options`` (``memory``, ``reorthogonalize``) go to Lanczos; with ``"auto"``,
    given options select it.
    """
    lanczos_options = dict(lanczos_options or {})
    if method == "auto":
        small = is_small_dense(problem.operator) and not lanczos_options
        method = "dense" if small else "lanczos"
    if not problem.finite:
        return stamped(nonfinite_result(problem, {}), method)
    if method == "dense":
        result = run_dense(problem, f)
        finished_hooks(problem, result, iterates=True)
        return stamped(result, "dense")
    if method == "lanczos":
        from ..krylov._funm_lanczos import run_funm_lanczos

        result = run_funm_lanczos(problem, f, maxiter=maxiter, **lanczos_options)
        return stamped(result, "lanczos")
    return run_chebyshev(problem, f, maxiter=maxiter, interval=chebyshev_interval)


def run_chebyshev(
    problem: Problem,
    f: Callable[[np.ndarray], np.ndarray],
    *,
    maxiter: int | None,
    interval: Callable[[], tuple[float, float]] | None,
) -> SolveResult:
    """Run ``f(A) b`` by a Chebyshev expansion on the spectral interval (estimated if None)."""
    from ..krylov._chebyshev import run_funm_chebyshev
    from ..krylov._spectrum import spectral_bounds

    operator = problem.operator
    if interval is None:
        bounds = spectral_bounds(operator)
        lower = max(bounds.lower, 0.0) if operator.psd else bounds.lower
        ends, extra_matvecs = (lower, bounds.upper), bounds.n_matvec
    else:
        ends, extra_matvecs = interval(), 0
    with np.errstate(all="ignore"):
        values = np.asarray(f(np.asarray(ends, dtype=np.float64)), dtype=np.float64)
    if not np.all(np.isfinite(values)):
        message = (
            f"method='chebyshev' needs the function finite on the whole spectral interval "
            f"[{ends[0]:.3g}, {ends[1]:.3g}], but it is singular there (the enclosure of "
            "the spectrum reaches 0); use method='lanczos' (or 'auto'), or damping > 0"
        )
        raise ValueError(message)
    result = run_funm_chebyshev(problem, f, interval=ends, maxiter=maxiter)
    result = dataclasses.replace(result, n_matvec=result.n_matvec + extra_matvecs)
    finished_hooks(problem, result, iterates=False)
    return stamped(result, "chebyshev")


def run_squared(
    problem: Problem, method: str, *, damping: float, variant: str, maxiter: int | None
) -> SolveResult:
    """``abs_inv`` by a method on ``A^2``: the paper's series or the rational quadrature."""
    if method == "series":
        from ..series import SeriesOptions
        from ..series._abs_inv import run_abs_inv

        options = SeriesOptions(maxiter=maxiter)
        result = run_abs_inv(problem, options, damping=damping, variant=variant)
    else:
        from ..krylov._rational import run_abs_inv_rational

        result = run_abs_inv_rational(problem, damping=damping, variant=variant, maxiter=maxiter)
    finished_hooks(problem, result, iterates=False)
    return stamped(result, method)
