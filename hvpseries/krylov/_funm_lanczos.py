"""f(A) b for a symmetric A by the Lanczos method, with an a posteriori error estimate.

This module checks the options and splits a block into columns; the per-column driver
(checkpoints, error estimate, returned vector) is in ``_funm_lanczos_driver.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._core._checks import check_maxiter
from .._core._result import SolveResult
from .._core._scalar_function import checked_scalar_function
from .._solve._problem import Problem, finish, nonfinite_result, pose
from ._funm_lanczos_driver import BasisOverBudget, _ColumnOutcome, _FunmLanczos
from ._funm_lanczos_driver import f_tridiagonal_e1 as f_tridiagonal_e1  # asv_benchmarks uses it
from ._lanczos import check_real, check_reorthogonalize
from ._memory_budget import stored_vectors_that_fit

__all__ = ["funm_lanczos"]

MEMORY_CHOICES = ("store", "two-pass")

# Up to this size the default reorthogonalisation is full: with partial reorthogonalisation a
# run to m = n (an exhausted Krylov space) left errors up to ~100 eps m kappa, far above the
# breakdown estimate, on random indefinite matrices with n <= 60; with full, ~eps kappa.
_FULL_REORTHOGONALIZATION_MAX_N = 1000


def funm_lanczos(
    A: Any,
    b: Any,
    f: Callable[[np.ndarray], np.ndarray],
    *,
    rtol: float = 1e-6,
    atol: float = 0.0,
    maxiter: int | None = None,
    reorthogonalize: str | None = None,
    memory: str = "store",
    callback: Callable[[Any], Any] | None = None,
    progress: Callable[[int, float], Any] | None = None,
    throw: bool = False,
) -> SolveResult:
    r"""Compute ``f(A) b`` for a symmetric ``A`` by the Lanczos method, to a tolerance.

    Parameters
    ----------
    A : LinearOperator or matrix
        A symmetric operator (anything :func:`hvpseries.aslinearoperator` accepts); operators
        tagged ``symmetric=False`` are refused, untagged ones are assumed symmetric.
    b : array, shape (n,) or (n, k)
        Right-hand side; a block is processed column by column.
    f : callable
        The scalar function, applied on the host to a float64 NumPy array of Ritz values and
        returning one of the same shape, e.g. ``lambda t: 1 / (np.abs(t) + 0.1)``; finite on
        the spectrum of ``A``. The stopping test bounds the error from unresolved spectrum at
        the kinks of ``f`` (points where it is not analytic, as 0 for ``|t|``): those of an
        attribute ``kinks`` (``()`` for an analytic ``f``; known for ``np.sign`` and
        ``np.abs``), else those located numerically from ``f``'s values (see Notes).
    rtol, atol : float, default 1e-6 and 0
        Stop a column when its error estimate is ``<= max(rtol * ||x||, atol)``, ``x`` the
        current approximation of ``f(A) b``.
    maxiter : int, optional
        Most Lanczos steps per column (default ``10 n``, or ``2 n`` with reorthogonalisation).
        By default a column whose iterates agree but whose bound on unresolved spectrum does
        not meet the tolerance gets twice its steps (at least 32 more, more while the bound
        halves) and then ends ``UNVERIFIED``; a ``maxiter`` you give instead lets it go on
        until it is certified or reaches ``maxiter``.
    reorthogonalize : {"partial", "full", "none"}, optional
        Default ``"full"`` for ``n <= 1000`` (only a fully orthogonal basis keeps a run to
        ``m = n`` accurate to rounding), ``"partial"`` above, ``"none"`` with ``"two-pass"``
        (no basis kept). See :func:`lanczos`.
    memory : {"store", "two-pass"}, default "store"
        ``"store"`` keeps the basis (``m`` vectors); ``"two-pass"`` keeps ``O(n)`` memory by
        running the recurrence twice, for ``T`` and then to form ``Q y`` (twice the matvecs).
        A stored basis that reaches half the memory free at the start is given up: the column
        starts again in two passes (``maxiter`` then bounds each attempt), and
        ``info["stored_before_switch"]`` says after how many matvecs. Not with a ``callback``,
        an explicit ``reorthogonalize``, a row-sharded operator or an initialised
        ``torch.distributed`` (the ranks would have to agree on the switch).
    callback : callable, optional
        ``callback(xk)`` at each checkpoint with the current ``f(A) b`` (needs "store").
    progress : callable, optional
        Called at every checkpoint as ``progress(n_matvec, error_estimate)`` (free). For a
        block, ``n_matvec`` counts all columns so far and the estimate is the current column's.
    throw : bool, default False
        Raise :class:`hvpseries.ConvergenceError` instead of returning a non-converged result.

    Returns
    -------
    SolveResult
        ``x`` approximates ``f(A) b``; ``error_estimate`` is the estimated absolute error (per
        column as a NumPy array for a block); ``info`` holds ``method``, ``reorthogonalize``,
        ``memory`` (those actually used, per column for a block), ``n_checkpoints``,
        ``n_reorthogonalizations`` and, after a switch to two passes, ``stored_before_switch``.
        ``status``: ``SUCCESS`` (the estimate meets the tolerance), ``STAGNATED`` (the iterates
        stopped changing at the rounding level above it), ``UNVERIFIED`` (they agree, but the
        bound on unresolved spectrum does not meet it by the default deadline under
        ``maxiter`` above, or ``f`` is too rough to locate its kinks), ``MAX_ITERATIONS``, or
        ``NONFINITE`` (in ``b``, a product, or ``f(theta)``).

    Raises
    ------
    ValueError
        For bad tolerances, ``maxiter``, ``memory`` or ``reorthogonalize`` values, an operator
        tagged non-symmetric, or ``memory="two-pass"`` with a ``callback`` or with
        ``reorthogonalize`` other than ``"none"``.
    TypeError
        If ``f``, ``callback`` or ``progress`` is not callable, for mixed array libraries or
        a complex operator.

    Notes
    -----
    ``f(A) b ~ ||b|| Q_m f(T_m) e_1``, ``Q_m`` and ``T_m`` the Lanczos basis and tridiagonal of
    ``K_m(A, b)``, with ``f(T_m) e_1`` evaluated on the host at checkpoints. The error estimate
    extrapolates the change between checkpoint iterates (an estimate, not a bound: ``1/|t|`` on
    indefinite spectra converges with plateaus), plus a bound on spectrum the Krylov space has
    not resolved for each kink of ``f`` (none below 0 if ``psd=True``). Formulas: the module
    docstring of ``hvpseries.krylov._funm_lanczos_driver``; measurements: the user guide,
    sections "Lanczos in hvpseries" and "When is SUCCESS true?".

    References
    ----------
    .. [1] N. J. Higham, *Functions of Matrices*, SIAM, 2008, chapter 13.
    .. [2] A. Frommer, K. Kahl, T. Lippert, H. Rittich, "2-norm error bounds and estimates
       for Lanczos approximations to linear systems and rational matrix functions",
       SIAM J. Matrix Anal. Appl. 34 (2013).

    Examples
    --------
    >>> import numpy as np
    >>> from hvpseries import krylov
    >>> A = np.diag(np.linspace(-2.0, 3.0, 200))
    >>> b = np.ones(200)
    >>> result = krylov.funm_lanczos(A, b, lambda t: 1 / (np.abs(t) + 0.5), rtol=1e-8)
    >>> result.converged
    True
    >>> exact = b / (np.abs(np.diag(A)) + 0.5)
    >>> bool(np.linalg.norm(result.x - exact) <= 1e-7 * np.linalg.norm(exact))
    True
    """
    problem = _posed(A, b, "funm_lanczos", rtol, atol, callback=callback, progress=progress)
    raw = run_funm_lanczos(
        problem, f, maxiter=maxiter, reorthogonalize=reorthogonalize, memory=memory
    )
    return finish(problem, raw, throw=throw)


def _posed(A: Any, b: Any, method: str, rtol: Any, atol: Any, **hooks: Any) -> Problem:
    """Pose a call, or a column of a block; a block is not rescaled as a whole (its columns are)."""
    return pose(
        A, b, method=method, rtol=rtol, atol=atol, rescale=getattr(b, "ndim", 1) == 1, **hooks
    )


def run_funm_lanczos(
    problem: Problem,
    f: Callable[[np.ndarray], np.ndarray],
    *,
    maxiter: int | None = None,
    reorthogonalize: str | None = None,
    memory: str = "store",
) -> SolveResult:
    """Run :func:`funm_lanczos` on a posed problem; the result is the raw one, to finish.

    Raises
    ------
    TypeError, ValueError
        For a complex operator, a non-callable ``f``, or bad ``maxiter``, ``memory`` or
        ``reorthogonalize`` values (see :func:`funm_lanczos`).
    """
    operator = problem.operator
    check_real(operator, "funm_lanczos")
    f = checked_scalar_function(f)
    check_maxiter(maxiter)
    # the caller's choices, as given: columns of a block are run with them too
    given = {"maxiter": maxiter, "reorthogonalize": reorthogonalize, "memory": memory}
    reorthogonalize = _checked_memory_options(problem, memory, reorthogonalize)
    n = operator.global_shape[0]
    wait_to_maxiter = maxiter is not None
    if maxiter is None:
        maxiter = max(10 * n, 20) if reorthogonalize == "none" else max(2 * n, 20)
    xp = operator.xp
    info = {"method": "lanczos", "reorthogonalize": reorthogonalize, "memory": memory}
    if not problem.finite:
        return nonfinite_result(problem, info)
    if not problem.vector:
        # Column by column, each posed (and scaled) alone: each column of a badly scaled block
        # gets its own scale, and the hooks that column's (unscaled) values.
        results: list[SolveResult] = []
        for j in range(problem.b.shape[1]):
            hooks = _block_hooks(xp, problem.b, results, problem.callback, problem.progress)
            column = _posed(
                operator, problem.b[:, j], problem.method, problem.rtol, problem.atol, **hooks
            )
            results.append(finish(column, run_funm_lanczos(column, f, **given)))
        return _combined(xp, results, info)
    # A stored basis that would fill half the free memory is given up for two passes: not
    # where a callback needs the basis, the caller chose the reorthogonalisation, or the
    # operator is row-sharded (its ranks would have to agree on the switch; an initialised
    # torch.distributed is ruled out in stored_vectors_that_fit).
    fits = None
    if (
        memory == "store"
        and problem.callback is None
        and given["reorthogonalize"] is None
        and problem.b.shape[0] == n
    ):
        fits = stored_vectors_that_fit(xp, problem.b)
    solver = _FunmLanczos(
        operator,
        f,
        problem.rtol,
        problem.atol,
        maxiter,
        reorthogonalize,
        memory,
        problem.callback,
        problem.progress,
        wait_to_maxiter=wait_to_maxiter,
        most_stored=fits,
    )
    stored_steps = None
    try:
        outcome = solver.solve(problem.b, float(problem.b_norms[0]))
    except BasisOverBudget as over:
        stored_steps = over.n_matvec  # leaving the handler frees the stored basis
    if stored_steps is not None:
        del solver
        outcome = _solve_in_two_passes(problem, f, maxiter, wait_to_maxiter, stored_steps)
        info.update(memory="two-pass", reorthogonalize="none", stored_before_switch=stored_steps)
    info["n_checkpoints"] = outcome.n_checkpoints
    info["n_reorthogonalizations"] = outcome.n_reorthogonalizations
    return SolveResult(
        x=outcome.x,
        status=outcome.status,
        n_matvec=outcome.n_matvec,
        n_iter=outcome.n_steps,
        error_estimate=outcome.estimate,
        info=info,
    )


def _solve_in_two_passes(
    problem: Problem,
    f: Callable[[np.ndarray], np.ndarray],
    maxiter: int,
    wait_to_maxiter: bool,
    stored_steps: int,
) -> _ColumnOutcome:
    """Start a column again in two passes, its stored basis over budget after ``stored_steps``.

    A ``maxiter`` the caller gave bounds this attempt too; the default one becomes that
    without reorthogonalisation. The outcome and ``progress`` count the matvecs of both.
    """
    if not wait_to_maxiter:
        maxiter = max(10 * problem.operator.global_shape[0], 20)
    progress = problem.progress
    if progress is not None:

        def progress(k: int, estimate: float, report=problem.progress) -> Any:
            return report(stored_steps + k, estimate)  # the matvecs of both attempts

    two_pass = _FunmLanczos(
        problem.operator,
        f,
        problem.rtol,
        problem.atol,
        maxiter,
        "none",
        "two-pass",
        None,
        progress,
        wait_to_maxiter=wait_to_maxiter,
    )
    outcome = two_pass.solve(problem.b, float(problem.b_norms[0]))
    outcome.n_matvec += stored_steps
    return outcome


def _checked_memory_options(problem: Problem, memory: Any, reorthogonalize: Any) -> str:
    """Check ``memory`` and ``reorthogonalize`` together; return the reorthogonalisation."""
    if memory not in MEMORY_CHOICES:
        message = f"memory must be 'store' or 'two-pass', got {memory!r}"
        raise ValueError(message)
    if reorthogonalize is None:
        if memory == "two-pass":
            reorthogonalize = "none"
        else:
            small = problem.operator.global_shape[0] <= _FULL_REORTHOGONALIZATION_MAX_N
            reorthogonalize = "full" if small else "partial"
    check_reorthogonalize(reorthogonalize)
    if memory == "two-pass" and reorthogonalize != "none":
        message = (
            "memory='two-pass' keeps no basis to reorthogonalise against; use "
            f"reorthogonalize='none' (got {reorthogonalize!r}) or memory='store'"
        )
        raise ValueError(message)
    if problem.callback is not None and memory == "two-pass":
        message = (
            "callback(xk) needs the stored basis to form the iterates; with memory='two-pass' "
            "pass progress=(n_matvec, error_estimate) instead, or use memory='store'"
        )
        raise ValueError(message)
    return reorthogonalize


def _block_hooks(
    xp: Any,
    b: Any,
    done: list[SolveResult],
    callback: Callable[[Any], Any] | None,
    progress: Callable[[int, float], Any] | None,
) -> dict[str, Any]:
    """Return the hooks for the next column of a block; the caller sees the whole block."""
    hooks: dict[str, Any] = {}
    column = len(done)
    if callback is not None:

        def block_callback(x: Any) -> None:
            later = b.shape[1] - column - 1
            zeros = [xp.zeros_like(x)] * later
            callback(xp.stack([r.x for r in done] + [x] + zeros, axis=1))

        hooks["callback"] = block_callback
    if progress is not None:
        before = sum(r.n_matvec for r in done)
        hooks["progress"] = lambda count, estimate: progress(before + count, estimate)
    return hooks


def _combined(xp: Any, results: list[SolveResult], info: dict[str, Any]) -> SolveResult:
    """One block result from the results of its columns."""
    statuses = [r.status for r in results]
    info["n_checkpoints"] = sum(r.info["n_checkpoints"] for r in results)
    info["n_reorthogonalizations"] = sum(r.info["n_reorthogonalizations"] for r in results)
    if any("rhs_scale" in r.info for r in results):
        info["rhs_scale"] = [r.info.get("rhs_scale", 1.0) for r in results]
    if any("stored_before_switch" in r.info for r in results):
        # some columns went on in two passes: say so, column by column
        for key in ("memory", "reorthogonalize"):
            info[key] = [r.info[key] for r in results]
        info["stored_before_switch"] = [r.info.get("stored_before_switch", 0) for r in results]
    return SolveResult(
        x=xp.stack([r.x for r in results], axis=1),
        status=next((s for s in statuses if not s.converged), statuses[0]),
        n_matvec=sum(r.n_matvec for r in results),
        n_iter=max(r.n_iter for r in results),
        error_estimate=np.asarray([r.error_estimate for r in results]),
        info=info,
    )
