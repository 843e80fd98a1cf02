"""f(A) b for a symmetric A by the Lanczos method, with an a posteriori error estimate."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg

from .._core._array_api import device, epsilon
from .._core._checks import check_maxiter
from .._core._result import SolveResult, Status
from .._core._scalar_function import checked_scalar_function
from .._operators._base import LinearOperator
from .._solve._problem import Problem, finish, nonfinite_result, pose
from ._lanczos import LanczosProcess, _tridiagonal_eigh, check_real, check_reorthogonalize
from ._unresolved_spectrum import unresolved_error_bound

__all__ = ["funm_lanczos"]

MEMORY_CHOICES = ("store", "two-pass")

# Checkpoints (where f(T) e_1 is evaluated) grow geometrically by this factor at most; near the
# predicted end they are placed where the extrapolated error meets the tolerance. The error
# estimate lags by one checkpoint interval and the endgame often converges superlinearly, so
# the interval bounds the overshoot in matvecs: 25% growth cost up to 1.39x the matvecs of an
# oracle-stopped Lanczos (2D Helmholtz, 1e4 unknowns), 10% costs at most 1.13x on the
# benchmark problems, and the extra checkpoints' host work was repaid by the saved steps.
_GROWTH = 1.1
_NEAR_GROWTH = 1.05
_FIRST_CHECKPOINT = 8
# Up to this size the default reorthogonalisation is full: with partial reorthogonalisation a
# run to m = n (an exhausted Krylov space) left errors up to ~100 eps m kappa, far above the
# breakdown estimate, on random indefinite matrices with n <= 60; with full, ~eps kappa.
_FULL_REORTHOGONALIZATION_MAX_N = 1000
# The extrapolated estimate is never below this fraction of the last difference (0.1 let the
# true error exceed ten times the estimate on indefinite spectra with plateaus; 0.3 costs about
# 4% more matvecs).
_SMALLEST_FACTOR = 0.3
# A function object may offer ``tridiagonal_apply(alpha, off, *, tolerance)`` computing f(T) e_1
# in O(m) work (see _tridiagonal_functions.py); it is used from this many Lanczos steps on (below,
# the eigendecomposition is as cheap and exact) and asked for this fraction of rtol, so that its
# error stays far below the differences the error estimate is built from.
_FAST_MIN_STEPS = 128
_FAST_ACCURACY = 1e-3
# The returned vector is evaluated once more at this accuracy (rounding level, as accurate as
# the eigendecomposition), which costs about one checkpoint.
_FINAL_ACCURACY = 1e-14
# When the iterates agree but the bound on unresolved spectrum beyond a kink of f does not meet
# the tolerance, Lanczos goes on to twice the steps (at least this many more) for the bound;
# then the status is UNVERIFIED.
_CERTIFICATE_MIN_STEPS = 32


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
    r"""Compute ``f(A) b`` for a symmetric ``A`` by the Lanczos method.

    ``f(A) b ~ ||b|| Q_m f(T_m) e_1`` where ``Q_m`` and ``T_m`` are the Lanczos basis and
    tridiagonal of the Krylov space ``K_m(A, b)``; ``m`` grows until an a posteriori error
    estimate meets the tolerance.

    Parameters
    ----------
    A : LinearOperator or matrix
        A symmetric operator (anything :func:`hvpseries.aslinearoperator` accepts); operators
        tagged ``symmetric=False`` are refused, untagged ones are assumed symmetric.
    b : array, shape (n,) or (n, k)
        Right-hand side; a block is processed column by column.
    f : callable
        The scalar function, applied to a float64 NumPy array of Ritz values on the host and
        returning an array of the same shape, e.g. ``lambda t: 1 / (np.abs(t) + 0.1)``. It
        must be defined (finite) on the spectrum of ``A``. An attribute ``kinks`` (a tuple
        of points where ``f`` is not analytic, as 0 for ``|t|``; ``np.sign`` and ``np.abs``
        are recognised) makes the stopping test bound the error from unresolved spectrum
        there (see Notes).
    rtol, atol : float, default 1e-6 and 0
        Stop a column when its error estimate ``e`` satisfies
        ``e <= max(rtol * ||x||, atol)``, ``x`` the current approximation of ``f(A) b``.
    maxiter : int, optional
        Maximum Lanczos steps per column (default ``10 n`` without reorthogonalisation,
        ``2 n`` with it).
    reorthogonalize : {"partial", "full", "none"}, optional
        Default with ``memory="store"``: ``"full"`` for ``n <= 1000`` (its ``O(n m^2)`` work
        is then at most that of ``m`` dense matvecs, and when the Krylov space fills the whole
        space, ``m = n``, only a fully orthogonal basis keeps the answer accurate to
        rounding), ``"partial"`` above. ``"none"`` with ``"two-pass"`` (which keeps no basis
        to reorthogonalise against). See :func:`lanczos`.
    memory : {"store", "two-pass"}, default "store"
        ``"store"`` keeps the basis (``m`` vectors); ``"two-pass"`` keeps ``O(n)`` memory by
        running the recurrence twice: once for ``T``, once more to form ``Q y``
        (about twice the matvecs).
    callback : callable, optional
        Called at every checkpoint as ``callback(xk)`` with the current approximation of
        ``f(A) b`` (shape of ``b``; for a block, the columns not reached yet are zero). Forming
        ``xk`` costs one combination of the basis per checkpoint, so it needs
        ``memory="store"``.
    progress : callable, optional
        Called at every checkpoint as ``progress(n_matvec, error_estimate)`` (for progress
        bars and logging; free). For a block, ``n_matvec`` counts all columns so far and the
        estimate is the current column's.
    throw : bool, default False
        Raise :class:`hvpseries.ConvergenceError` instead of returning a non-converged result.

    Returns
    -------
    SolveResult
        ``x`` approximates ``f(A) b``; ``error_estimate`` is the estimated absolute error
        (per column as a NumPy array for a block); ``info`` holds ``method``,
        ``reorthogonalize``, ``memory``, ``n_checkpoints`` and ``n_reorthogonalizations``.

    Raises
    ------
    ValueError
        For bad tolerances, ``maxiter``, ``memory`` or ``reorthogonalize`` values, an
        operator tagged non-symmetric, ``reorthogonalize`` other than ``"none"`` with
        ``memory="two-pass"``, or a ``callback`` with ``memory="two-pass"``.
    TypeError
        If ``f``, ``callback`` or ``progress`` is not callable, for mixed array libraries, or
        for a complex operator.

    Notes
    -----
    *Host and device.* The vectors stay on the operator's device; ``T`` (tiny) lives on the
    host in float64 and ``f(T) e_1 = V f(Lambda) V^T e_1`` is computed with
    :func:`scipy.linalg.eigh_tridiagonal`. That ``O(m^2)`` host work is done only at
    checkpoints: ``m = 8`` and then geometrically growing by at most 10%; once the
    convergence rate is known the next checkpoint is placed where the extrapolated error
    meets the tolerance (but at least 3% further). A function object with a method
    ``tridiagonal_apply(alpha, off, *, tolerance)`` (as :func:`hvpseries.abs_inv` passes for
    ``1/(|t| + d)`` and ``(t^2 + d)^{-1/2}``) may compute ``f(T) e_1`` itself, to relative
    accuracy ``tolerance = 1e-3 rtol`` at the checkpoints and ``1e-14`` for the vector
    returned, in ``O(m)`` work per quadrature node; it is used from 128 steps on, and where it
    returns ``None`` the eigendecomposition is used.

    *Error estimate.* With ``y_c`` the coefficient vector at checkpoint ``c`` (padded with
    zeros), ``D = ||y_c - y_{c'}||`` between consecutive checkpoints equals
    ``||x_c - x_{c'}||`` for an orthonormal basis. Assuming linear convergence
    ``err(m) ~ C rho^m``, ``D ~ err(c') (1 - rho^d)`` with ``d = c - c'``, so
    ``err(c) ~ D rho^d / (1 - rho^d)``; ``rho`` is fitted from the last two differences.
    The estimate used is ``D max(0.3, rho^d / (1 - rho^d))`` (at most 3.3 times below the
    last difference, and only once two consecutive contractions were seen); convergence is
    declared only once a contraction (``rho < 1``) has been observed. This is an estimate,
    not a bound: on indefinite problems the convergence for ``1/|t|`` has plateaus (Ritz
    values near zero), where two iterates can agree while both are far from the answer. If
    the iterates stop changing at the rounding level above the tolerance, the status is
    ``STAGNATED``.

    *Unresolved spectrum.* Agreeing iterates cannot see eigenvalues the Krylov space has not
    found, and past a kink of ``f`` the Lanczos polynomial ``p`` follows the analytic
    continuation of ``f``, not ``f``. For each declared kink, a bound from the
    Chebyshev-Markov-Stieltjes inequality (a distribution with the ``2m`` moments Lanczos
    knows has at most ``lambda_m(t) = 1 / sum_k p_k(t)^2`` of mass beyond ``t``) is added to
    the estimate: rigorous for the spectrum beyond a kink outside the Ritz values, and for one
    hidden eigenvalue in the Ritz gap around a kink inside them. An operator tagged
    ``psd=True`` has nothing below 0. If the iterates agree but this bound does not meet the
    tolerance within twice the steps (at least 32 more), the status is ``UNVERIFIED``.

    A breakdown (the Krylov space became invariant) gives the exact answer up to rounding;
    the estimate is then ``2 eps m kappa_f ||x||`` with ``kappa_f = max|theta| max|f(theta)|``.

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
    problem = pose(
        A,
        b,
        method="funm_lanczos",
        rtol=rtol,
        atol=atol,
        callback=callback,
        progress=progress,
        rescale=getattr(b, "ndim", 1) == 1,  # a block: each column is posed and scaled alone
    )
    raw = run_funm_lanczos(
        problem, f, maxiter=maxiter, reorthogonalize=reorthogonalize, memory=memory
    )
    return finish(problem, raw, throw=throw)


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
    reorthogonalize = _checked_memory_options(problem, memory, reorthogonalize)
    n = operator.global_shape[0]
    if maxiter is None:
        maxiter = max(10 * n, 20) if reorthogonalize == "none" else max(2 * n, 20)
    xp = operator.xp
    info = {"method": "lanczos", "reorthogonalize": reorthogonalize, "memory": memory}
    if not problem.finite:
        return nonfinite_result(problem, info)
    if not problem.vector:
        # Column by column, each posed (and scaled) alone: each column of a badly scaled block
        # gets its own scale, and the hooks that column's (unscaled) values.
        options = {"maxiter": maxiter, "reorthogonalize": reorthogonalize, "memory": memory}
        results: list[SolveResult] = []
        for j in range(problem.b.shape[1]):
            hooks = _block_hooks(xp, problem.b, results, problem.callback, problem.progress)
            column = pose(
                operator,
                problem.b[:, j],
                method=problem.method,
                rtol=problem.rtol,
                atol=problem.atol,
                **hooks,
            )
            results.append(finish(column, run_funm_lanczos(column, f, **options)))
        return _combined(xp, results, info)
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
    )
    outcome = solver.solve(problem.b, float(problem.b_norms[0]))
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
    return SolveResult(
        x=xp.stack([r.x for r in results], axis=1),
        status=next((s for s in statuses if not s.converged), statuses[0]),
        n_matvec=sum(r.n_matvec for r in results),
        n_iter=max(r.n_iter for r in results),
        error_estimate=np.asarray([r.error_estimate for r in results]),
        info=info,
    )


class _ColumnOutcome:
    __slots__ = (
        "estimate",
        "n_checkpoints",
        "n_matvec",
        "n_reorthogonalizations",
        "n_steps",
        "status",
        "x",
    )

    def __init__(self, **values: Any) -> None:
        for name, value in values.items():
            setattr(self, name, value)


def f_tridiagonal_e1(
    f: Callable[[np.ndarray], np.ndarray], alpha: np.ndarray, off: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``f(T) e_1`` and the eigenvalues of the symmetric tridiagonal ``T`` (host)."""
    eigenvalues, vectors = _tridiagonal_eigh(alpha, off)
    values = np.asarray(f(eigenvalues), dtype=np.float64)  # f is checked for its shape
    # A non-finite value of f (a Ritz value at a singularity) is reported by the caller.
    with np.errstate(invalid="ignore", over="ignore"):
        return vectors @ (values * vectors[0, :]), eigenvalues


class _FunmLanczos:
    """The per-column driver: Lanczos steps, checkpoints, error estimate, final vector."""

    def __init__(
        self,
        operator: LinearOperator,
        f: Callable[[np.ndarray], np.ndarray],
        rtol: float,
        atol: float,
        maxiter: int,
        reorthogonalize: str,
        memory: str,
        callback: Callable[[Any], Any] | None,
        progress: Callable[[int, float], Any] | None,
    ) -> None:
        self.operator = operator
        self.f = f
        self.rtol = rtol
        self.atol = atol
        self.maxiter = maxiter
        self.reorthogonalize = reorthogonalize
        self.memory = memory
        self.callback = callback
        self.progress = progress
        self.eps = epsilon(operator.xp, operator.dtype)
        self.fast_apply = getattr(f, "tridiagonal_apply", None)
        self.kinks = _declared_kinks(f)
        self.spectrum_lower = 0.0 if operator.psd else -math.inf

    def solve(self, b: Any, norm_b: float) -> _ColumnOutcome:
        """Run one column ``b`` of norm ``norm_b`` to its stopping test."""
        xp = self.operator.xp
        if norm_b == 0.0:
            return _ColumnOutcome(
                x=xp.zeros_like(b),
                status=Status.SUCCESS,
                n_matvec=0,
                n_steps=0,
                estimate=0.0,
                n_checkpoints=0,
                n_reorthogonalizations=0,
            )
        store = self.memory == "store"
        process = LanczosProcess(
            self.operator, b / norm_b, reorthogonalize=self.reorthogonalize, store=store
        )
        y, estimate, status, checkpoints = self._iterate(process, norm_b)
        y = self._refine(process, y, norm_b)
        m = y.size
        n_matvec = process.n_matvec
        if not np.all(np.isfinite(y)):
            # f is not finite at a Ritz value (a singularity inside the spectrum's hull):
            # there is no approximation to combine.
            x = xp.full(b.shape, math.nan, dtype=self.operator.dtype, device=device(b))
            status = Status.NONFINITE
        elif store:
            assert process.basis is not None
            x = process.basis.combine(y, self.operator.dtype, self.operator.device)
        else:
            x, extra = self._second_pass(b / norm_b, y)
            n_matvec += extra
        if status.usable and not self.operator.vector_space.all_finite(x):
            status = Status.NONFINITE
        return _ColumnOutcome(
            x=x,
            status=status,
            n_matvec=n_matvec,
            n_steps=m,
            estimate=estimate,
            n_checkpoints=checkpoints,
            n_reorthogonalizations=process.n_reorthogonalizations,
        )

    def _iterate(self, process: LanczosProcess, norm_b: float) -> tuple:
        target = min(_FIRST_CHECKPOINT, self.maxiter)
        previous: np.ndarray | None = None
        previous_m = 0
        differences: list[tuple[int, float]] = []  # (steps between checkpoints, ||y_c - y_c'||)
        checkpoints = 0
        settled_at: int | None = None  # steps when the iterates agreed but the bound did not
        while True:
            while process.num_steps < target and process.step():
                pass
            m = process.num_steps
            alpha = np.asarray(process.alpha)
            off = np.asarray(process.beta[: m - 1])
            checkpoints += 1
            if not (np.all(np.isfinite(alpha)) and np.all(np.isfinite(off))):
                # The operator returned a non-finite product: T is not a tridiagonal to
                # decompose, and there is no approximation to return.
                self._report(process, math.inf, None)
                return np.full(m, math.nan), math.inf, Status.NONFINITE, checkpoints
            y, ritz = self._f_e1(alpha, off)
            y = norm_b * y
            finite = bool(np.all(np.isfinite(y)))
            # scipy's norm is BLAS nrm2: no overflow for the coefficients of a tiny operator
            y_norm = float(scipy.linalg.norm(y)) if finite else math.inf
            tolerance = max(self.rtol * y_norm, self.atol)
            if process.broke_down and finite and not math.isfinite(process.beta[-1]):
                return y, math.inf, Status.NONFINITE, checkpoints
            if process.broke_down and finite:
                # Exact up to rounding: m steps' rounding errors, added up linearly (with a
                # semi-orthogonal basis they are correlated: errors of 1-6 eps m kappa were
                # measured at m = n), amplified by about max|theta| max|f(theta)| (the
                # condition number kappa for f = 1/|t|).
                if ritz is None:
                    ritz = _tridiagonal_eigvals(alpha, off)
                condition = max(1.0, float(np.max(np.abs(ritz)) * np.max(np.abs(self.f(ritz)))))
                relative = max(
                    2.0 * self.eps * m * condition,
                    process.breakdown_residual / max(process.anorm, 1e-300),
                )
                estimate = relative * y_norm
                status = Status.SUCCESS if estimate <= tolerance else Status.STAGNATED
                self._report(process, estimate, y)
                return y, estimate, status, checkpoints
            estimate, rate = math.inf, None
            if finite and previous is not None:
                difference = float(
                    scipy.linalg.norm(y - np.concatenate([previous, np.zeros(m - previous_m)]))
                )
                differences.append((m - previous_m, difference))
                estimate, rate = _extrapolated_error(differences)
            settled = rate is not None and rate < 1.0 and estimate <= tolerance
            flat = bool(differences) and finite and differences[-1][1] <= 10.0 * self.eps * y_norm
            if not (settled or flat):
                settled_at = None  # the iterates move again: the Krylov space found more
            else:
                # The iterates agree; the spectrum beyond a kink of f that the Krylov space has
                # not resolved is bounded separately (0 when there is none).
                unresolved = norm_b * self._unresolved_bound(process, alpha, y / norm_b, ritz)
                estimate += unresolved
                if unresolved > tolerance and settled_at is None:
                    settled_at = m
            self._report(process, estimate, y if finite else None)
            if (settled or flat) and estimate <= tolerance:
                return y, estimate, Status.SUCCESS, checkpoints
            if settled_at is not None and (
                m >= max(2 * settled_at, settled_at + _CERTIFICATE_MIN_STEPS)
                or m >= self.maxiter
                or process.broke_down
            ):
                return y, estimate, Status.UNVERIFIED, checkpoints
            if flat and settled_at is None:
                # The iterates no longer change above rounding: converged as far as this
                # precision allows.
                return y, estimate, Status.STAGNATED, checkpoints
            if m >= self.maxiter or process.broke_down:
                status = Status.MAX_ITERATIONS if finite else Status.NONFINITE
                return y, estimate, status, checkpoints
            if finite:
                previous, previous_m = y, m
            if settled_at is not None:
                rate = None  # the bound, not the differences, decides from here on
            target = min(self._next_checkpoint(m, estimate, rate, tolerance), self.maxiter)

    def _unresolved_bound(
        self,
        process: LanczosProcess,
        alpha: np.ndarray,
        coefficients: np.ndarray,
        ritz: np.ndarray | None,
    ) -> float:
        # The bound on the error from unresolved spectrum beyond a kink of f, for unit ||b||.
        if not self.kinks:
            return 0.0
        m = alpha.size
        beta = np.asarray(process.beta[:m], dtype=np.float64)
        if ritz is None:
            ritz = _tridiagonal_eigvals(alpha, beta[: m - 1])
        return unresolved_error_bound(
            alpha,
            beta,
            self.f,
            coefficients,
            np.sort(ritz),
            self.kinks,
            spectrum_lower=self.spectrum_lower,
        )

    def _f_e1(self, alpha: np.ndarray, off: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        # f(T) e_1 and, when they were computed, the Ritz values.
        if self.fast_apply is not None and alpha.size >= _FAST_MIN_STEPS and self.rtol > 0:
            y = self.fast_apply(alpha, off, tolerance=_FAST_ACCURACY * self.rtol)
            if y is not None:
                return np.asarray(y, dtype=np.float64), None
        return f_tridiagonal_e1(self.f, alpha, off)

    def _refine(self, process: LanczosProcess, y: np.ndarray, norm_b: float) -> np.ndarray:
        # The checkpoints ask the fast path for 1e-3 rtol, enough for the error estimate; the
        # vector returned gets f(T) e_1 to rounding level, as the eigendecomposition would.
        m = y.size
        if self.fast_apply is None or m < _FAST_MIN_STEPS or process.num_steps != m:
            return y
        alpha = np.asarray(process.alpha)
        refined = self.fast_apply(
            alpha, np.asarray(process.beta[: m - 1]), tolerance=_FINAL_ACCURACY
        )
        if refined is None or not np.all(np.isfinite(refined)):
            return y
        return norm_b * np.asarray(refined, dtype=np.float64)

    def _report(self, process: LanczosProcess, estimate: float, y: np.ndarray | None) -> None:
        if self.progress is not None:
            self.progress(process.n_matvec, estimate)
        if self.callback is not None and y is not None and process.basis is not None:
            operator = self.operator
            self.callback(process.basis.combine(y, operator.dtype, operator.device))

    @staticmethod
    def _next_checkpoint(m: int, estimate: float, rate: float | None, tolerance: float) -> int:
        # Far from the tolerance, grow by 10%; within four digits of it, by 5% (the endgame
        # of f(A) b often converges superlinearly, faster than any fitted rate predicts).
        growth = _GROWTH if not estimate <= 1e4 * tolerance else _NEAR_GROWTH
        largest = max(m + 4, math.ceil(growth * m))
        if rate is None or not rate < 1.0 or not math.isfinite(estimate) or tolerance <= 0:
            return largest
        smallest = m + max(2, math.ceil(0.03 * m))
        needed = math.log(tolerance / estimate) / math.log(rate) if estimate > tolerance else 0
        return int(min(max(m + math.ceil(needed), smallest), largest))

    def _second_pass(self, q0: Any, y: np.ndarray) -> tuple[Any, int]:
        # Rerun the identical recurrence (same operations, so the same vectors) and
        # accumulate x = sum_j y_j q_j without storing the basis.
        xp = self.operator.xp
        process = LanczosProcess(self.operator, q0, reorthogonalize="none", store=False)
        coefficients = xp.asarray(y, dtype=self.operator.dtype, device=self.operator.device)
        x = coefficients[0] * q0
        for j in range(1, y.size):
            if not process.step():
                break
            x = x + coefficients[j] * process.q
        return x, process.n_matvec


# NumPy's functions with a kink at 0, recognised without a ``kinks`` attribute.
_KNOWN_KINKS = {np.sign: (0.0,), np.abs: (0.0,)}


def _declared_kinks(f: Callable[[np.ndarray], np.ndarray]) -> tuple[float, ...]:
    """Return where ``f`` is not analytic: its ``kinks`` attribute (default none)."""
    f = getattr(f, "__wrapped__", f)  # the caller's own function
    known = _KNOWN_KINKS.get(f) if isinstance(f, np.ufunc) else None
    kinks = known if known is not None else getattr(f, "kinks", ())
    try:
        values = tuple(float(c) for c in kinks)
    except (TypeError, ValueError):
        message = f"f.kinks must be a sequence of real numbers, got {kinks!r}"
        raise TypeError(message) from None
    if not all(math.isfinite(c) for c in values):
        message = f"f.kinks must be finite, got {kinks!r}"
        raise ValueError(message)
    return values


def _tridiagonal_eigvals(alpha: np.ndarray, off: np.ndarray) -> np.ndarray:
    # Host-side on purpose (T is small): the eigenvalues alone, without the vectors.
    from scipy.linalg import eigvalsh_tridiagonal

    return alpha.copy() if alpha.size == 1 else eigvalsh_tridiagonal(alpha, off)


def _extrapolated_error(differences: list[tuple[int, float]]) -> tuple[float, float | None]:
    """Estimate the current error from the last differences of checkpoint iterates.

    Returns ``(estimate, rho)`` with ``rho`` the fitted per-step contraction factor, or
    ``None`` when fewer than two differences are known.
    """
    steps, last = differences[-1]
    if len(differences) < 2:
        return last, None
    steps_before, before = differences[-2]
    if before <= 0.0 or last <= 0.0:
        return last, (0.0 if last == 0.0 else None)
    # Model: difference_i = E rho^{c_{i-1}} (1 - rho^{d_i}); solve the ratio for rho by a
    # few fixed-point sweeps (a scalar equation, cheap).
    ratio = last / before
    if ratio >= 1.0:
        return last, ratio ** (1.0 / steps_before)
    if len(differences) < 3 or differences[-3][1] <= before:
        # No steady contraction yet (two decreasing steps in a row are required): a rate
        # fitted across a jump would be meaningless, so use the plain difference.
        return last, None
    rho = ratio ** (1.0 / steps_before)
    for _ in range(20):
        correction = (1.0 - rho**steps_before) / (1.0 - rho**steps)
        rho_new = min((ratio * correction) ** (1.0 / steps_before), 1.0 - 1e-15)
        if abs(rho_new - rho) <= 1e-14:
            break
        rho = rho_new
    # Convergence with plateaus (a discontinuous-Galerkin diffusion operator, inv_sqrt) fits a
    # fast rate to the last pair while the error stalls: extrapolate with the slowest per-step
    # contraction of the last few pairs, and not at all if one of them did not contract.
    slowest = max(rho, *_recent_contractions(differences))
    if slowest >= 1.0:
        return last, None
    # The extrapolation may lower the estimate below the last difference by a bounded factor: a
    # guard against a rate fitted to a lucky pair of differences.
    factor = slowest**steps / (1.0 - slowest**steps)
    return last * max(_SMALLEST_FACTOR, factor), rho


def _recent_contractions(differences: list[tuple[int, float]]) -> list[float]:
    """Per-step contraction factors of the last (up to) three pairs of differences."""
    factors = []
    for (steps, before), (_, after) in itertools.pairwise(differences[-4:]):
        if before > 0.0 and after > 0.0:
            factors.append((after / before) ** (1.0 / steps))
    return factors
