"""MINRES: minimal residual iterations for symmetric (possibly indefinite) systems."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from .._core._array_api import device, epsilon
from .._core._result import SolveResult, Status
from .._solve._problem import Problem, finish, pose
from ._blocks import (
    ColumnBook,
    LinearSystem,
    column_dots,
    column_norms,
    linear_system,
    make_result,
    take_columns,
    to_host,
)

__all__ = ["minres"]

# iterations between two checks triggered by a small ||A r|| / (||A|| ||r||)
_LSQ_RECHECK = 3


def minres(
    A: Any,
    b: Any,
    x0: Any = None,
    *,
    shift: float = 0.0,
    rtol: float = 1e-5,
    atol: float = 0.0,
    maxiter: int | None = None,
    M: Any = None,
    callback: Callable[[Any], None] | None = None,
    throw: bool = False,
) -> SolveResult:
    r"""Solve ``(A - shift I) x = b`` for a symmetric (Hermitian), possibly indefinite ``A``.

    Parameters
    ----------
    A : LinearOperator or array
        A symmetric operator of shape ``(n, n)``; it may be indefinite. Only ``A @ X`` is used.
    b : array
        Right-hand side ``(n,)`` or a block ``(n, k)`` (columns solved together, one ``matmat``
        per iteration).
    x0 : array, optional
        Starting guess of the shape of ``b`` (zero if omitted); never modified.
    shift : float
        Solve with ``A - shift * I`` instead of ``A`` (SciPy's convention).
    rtol, atol : float
        Relative and absolute tolerances, see Notes.
    maxiter : int, optional
        Maximum number of iterations (``10 n`` by default).
    M : LinearOperator or array, optional
        A symmetric positive definite preconditioner approximating ``(A - shift I)^-1``.
    callback : callable, optional
        ``callback(xk)`` after every iteration with the current iterate (shape of ``b``).
    throw : bool
        Raise :class:`hvpseries.ConvergenceError` instead of returning an unconverged result.

    Returns
    -------
    SolveResult
        ``residual_norm`` is the true residual ``||b - (A - shift I) x||`` of the returned
        ``x`` (one entry per column for a block); ``n_matvec`` counts every matvec, including
        the true-residual checks.

    Raises
    ------
    TypeError
        A tolerance passed positionally, a non-numeric tolerance, mixed array libraries.
    ValueError
        Negative or non-finite tolerances, ``maxiter < 1``, shape mismatches, or an operator
        tagged non-symmetric.

    Notes
    -----
    The stopping test is SciPy's *documented* one, per column:

    .. math:: \|b - (A - \sigma I) x\|_2 \le \max(\mathrm{rtol}\,\|b\|_2,\ \mathrm{atol}).

    (SciPy's ``minres`` actually stops on ``||r|| <= rtol ||A|| ||x||``, a much weaker test
    for ill-conditioned systems: on a log-spaced spectrum it reports success at ``rtol=1e-8``
    with a true relative residual of 1e-4.) The residual norm estimate of the MINRES
    recurrence (the preconditioned norm when ``M`` is given) triggers a check of the true
    residual, which costs one matvec and is counted. If the true residual fails, the trigger
    threshold is lowered by the observed ratio and the iteration continues; a true residual
    that no longer decreases between checks ends the column with ``Status.STAGNATED``.
    A preconditioner with ``r^H M r < 0`` is reported as ``Status.INDEFINITE``.

    References
    ----------
    C. C. Paige and M. A. Saunders, "Solution of sparse indefinite systems of linear
    equations", SIAM J. Numer. Anal. 12 (1975).

    Examples
    --------
    >>> import numpy as np
    >>> from hvpseries import krylov
    >>> A = np.diag([-2.0, 1.0, 3.0])
    >>> result = krylov.minres(A, np.ones(3), rtol=1e-12)
    >>> result.status.name, np.allclose(result.x, [-0.5, 1.0, 1.0 / 3.0])
    ('SUCCESS', True)
    """
    if isinstance(shift, bool) or not isinstance(shift, numbers.Real):
        message = f"shift must be a real number, got {shift!r}"
        raise TypeError(message)
    if not math.isfinite(shift):
        message = f"shift must be finite, got {shift!r}"
        raise ValueError(message)
    problem = pose(A, b, method="minres", rtol=rtol, atol=atol, x0=x0, callback=callback)
    raw = run_minres(problem, shift=float(shift), maxiter=maxiter, M=M)
    return finish(problem, raw, throw=throw)


def run_minres(
    problem: Problem, *, shift: float = 0.0, maxiter: Any = None, M: Any = None
) -> SolveResult:
    """Run MINRES on a posed problem (see :func:`minres`); the result is the raw one."""
    system = linear_system(problem, maxiter=maxiter, M=M, method="minres")
    return _minres(system, shift, callback=problem.callback)


def _minres(system: LinearSystem, shift: float, *, callback: Any) -> SolveResult:
    xp = system.xp
    operator = system.operator
    space = operator.vector_space
    preconditioner = system.preconditioner
    k = system.rhs.shape[1]
    book = ColumnBook(k)
    n_matvec = 0
    eps = epsilon(xp, operator.dtype)

    def apply(V: Any) -> Any:
        out = operator.matmat(V)
        return out - shift * V if shift != 0.0 else out

    def precondition(V: Any) -> Any:
        return preconditioner.matmat(V) if preconditioner is not None else V

    B = system.rhs
    if system.x0 is None:
        X = xp.zeros_like(B)
        R1 = B
    else:
        X = system.x0
        R1 = B - apply(X)
        n_matvec += k
    tol = system.tol.copy()
    Y = precondition(R1)
    beta_squared = column_dots(space, R1, Y)
    # without x0 the residual is b, whose norms the problem has
    r_norms = system.rhs_norms if system.x0 is None else to_host(xp, column_norms(space, R1))
    host_beta_squared = to_host(xp, beta_squared)

    # columns that stop before any iteration
    initial: list[int] = []
    initial_status: list[Status] = []
    for j in range(k):
        exact = system.x0 is not None or system.rhs_norms[j] == 0
        if r_norms[j] <= tol[j] and exact:
            initial.append(j)
            initial_status.append(Status.SUCCESS)
        elif host_beta_squared[j] <= 0:
            initial.append(j)
            initial_status.append(
                Status.INDEFINITE if host_beta_squared[j] < 0 else Status.BREAKDOWN
            )
        elif not np.isfinite(r_norms[j]) or not np.isfinite(host_beta_squared[j]):
            initial.append(j)
            initial_status.append(Status.NONFINITE)
    if initial:
        keep = book.finish(xp, X, initial, initial_status, [float(r_norms[j]) for j in initial])
        if not book.active:
            return make_result(system, book, X, n_matvec=n_matvec, n_iter=0, info={})
        X, R1, Y, B, beta_squared = (
            take_columns(xp, M_, keep) for M_ in (X, R1, Y, B, beta_squared)
        )
        tol, r_norms, host_beta_squared = tol[keep], r_norms[keep], host_beta_squared[keep]

    beta1 = xp.sqrt(beta_squared)
    # the recurrence estimates the M-norm of the residual; start the trigger from the ratio of
    # the 2-norm to the M-norm of the first residual (exactly 1 without a preconditioner)
    trigger = tol * r_norms / np.sqrt(host_beta_squared)
    last_true = np.full(len(book.active), np.inf)

    zeros = xp.zeros_like(beta1)
    old_beta, beta, dbar, epsln, phibar = zeros, beta1, zeros, zeros, beta1
    cs, sn = zeros - 1.0, zeros
    W = W2 = xp.zeros_like(X)
    R2 = R1
    n_iter = 0
    n_checks = 0
    trigger_device = None
    # the diagonal of the QR factor of the Lanczos matrix gives a condition estimate; beyond
    # 0.1 / eps the system is singular to working precision and the iterates blow up
    gamma_max, gamma_min = zeros, zeros + float(xp.finfo(beta1.dtype).max)
    singular_limit = 0.1 / eps
    matrix_norm_squared = zeros
    lsq_limit = eps  # (sqrt(eps))^2
    next_lsq_check = np.zeros(len(book.active))  # iteration from which the flag counts again
    for iteration in range(1, system.maxiter + 1):
        n_iter = iteration
        V = Y / beta
        Y = apply(V)
        n_matvec += len(book.active)
        previous = old_beta > 0
        Y = Y - xp.where(previous, beta / xp.where(previous, old_beta, 1.0), 0.0) * R1
        alpha = column_dots(space, V, Y)
        Y = Y - (alpha / beta) * R2
        R1, R2 = R2, Y
        Y = precondition(R2)
        old_beta = beta
        beta_squared = column_dots(space, R2, Y)
        beta = xp.sqrt(xp.where(beta_squared > 0, beta_squared, 0.0))
        # apply the previous rotation, then build and apply the new one
        old_epsln = epsln
        delta = cs * dbar + sn * alpha
        gbar = sn * dbar - cs * alpha
        epsln = sn * beta
        dbar = -cs * beta
        gamma = xp.sqrt(gbar * gbar + beta * beta)
        # ||A r|| / (||A|| ||r||), SciPy's test2: tiny when r is a least-squares residual
        matrix_norm_squared = (
            matrix_norm_squared + alpha * alpha + old_beta * old_beta + beta * beta
        )
        least_squares = gbar * gbar + dbar * dbar <= lsq_limit * matrix_norm_squared
        gamma = xp.where(gamma > eps, gamma, eps)
        gamma_max = xp.maximum(gamma_max, gamma)
        gamma_min = xp.minimum(gamma_min, gamma)
        cs = gbar / gamma
        sn = beta / gamma
        phi = cs * phibar
        phibar = sn * phibar
        W1, W2 = W2, W
        W = (V - old_epsln * W1 - delta * W2) / gamma
        X = X + phi * W
        if callback is not None:
            callback(book.assemble(xp, X, system.vector))

        if trigger_device is None:
            trigger_device = xp.asarray(trigger, dtype=phibar.dtype, device=device(phibar))
        singular = gamma_max >= singular_limit * gamma_min
        flags = (phibar <= trigger_device) | (beta_squared <= 0) | ~xp.isfinite(phibar)
        flags = flags | singular | least_squares
        if not bool(xp.any(flags)):
            continue
        host_phibar = to_host(xp, phibar)
        host_beta_squared = to_host(xp, beta_squared)
        host_singular = to_host(xp, xp.astype(singular, phibar.dtype)) > 0
        host_lsq = (to_host(xp, xp.astype(least_squares, phibar.dtype)) > 0) & (
            next_lsq_check <= iteration
        )
        stopped: list[int] = []
        stopped_status: list[Status] = []
        stopped_residual: list[float] = []
        candidates = []
        for position in range(len(book.active)):
            if not np.isfinite(host_phibar[position]) or not np.isfinite(
                host_beta_squared[position]
            ):
                stopped.append(position)
                stopped_status.append(Status.NONFINITE)
            elif (
                host_phibar[position] <= trigger[position]
                or host_beta_squared[position] <= 0
                or host_singular[position]
                or host_lsq[position]
            ):
                candidates.append(position)
        if candidates:
            n_checks += 1
            residual = take_columns(xp, B, candidates) - apply(take_columns(xp, X, candidates))
            true_norms = to_host(xp, column_norms(space, residual))
            n_matvec += len(candidates)
            for i, position in enumerate(candidates):
                if true_norms[i] <= tol[position]:
                    stopped.append(position)
                    stopped_status.append(Status.SUCCESS)
                elif host_beta_squared[position] < 0:
                    stopped.append(position)
                    stopped_status.append(Status.INDEFINITE)  # r^H M r < 0: M is indefinite
                elif (
                    host_beta_squared[position] == 0
                    or host_singular[position]
                    or true_norms[i] > 0.9 * last_true[position]
                ):
                    # an invariant subspace was found, the system is singular to working
                    # precision, or no progress since the last check: the iteration cannot
                    # improve this column any further
                    stopped.append(position)
                    stopped_status.append(Status.STAGNATED)
                else:
                    last_true[position] = true_norms[i]
                    next_lsq_check[position] = iteration + _LSQ_RECHECK
                    ratio = tol[position] / true_norms[i]
                    trigger[position] = 0.9 * min(trigger[position], host_phibar[position]) * ratio
                    trigger_device = None
            check_norms = dict(zip(candidates, true_norms, strict=True))
        else:
            check_norms = {}
        if not stopped:
            continue
        missing = [p for p in stopped if p not in check_norms]
        if missing:
            residual = take_columns(xp, B, missing) - apply(take_columns(xp, X, missing))
            n_matvec += len(missing)
            check_norms.update(
                zip(missing, to_host(xp, column_norms(space, residual)), strict=True)
            )
        stopped_residual = [float(check_norms[p]) for p in stopped]
        keep = book.finish(xp, X, stopped, stopped_status, stopped_residual)
        if not book.active:
            break
        X, B, Y, R1, R2, W, W2 = (take_columns(xp, M_, keep) for M_ in (X, B, Y, R1, R2, W, W2))
        old_beta, beta, dbar, epsln, phibar, cs, sn = (
            take_columns(xp, M_, keep) for M_ in (old_beta, beta, dbar, epsln, phibar, cs, sn)
        )
        gamma_max, gamma_min, matrix_norm_squared = (
            take_columns(xp, M_, keep) for M_ in (gamma_max, gamma_min, matrix_norm_squared)
        )
        tol, trigger, last_true = tol[keep], trigger[keep], last_true[keep]
        next_lsq_check = next_lsq_check[keep]
        trigger_device = None

    if book.active:
        positions = list(range(len(book.active)))
        residual = B - apply(X)
        n_matvec += len(positions)
        final_norms = to_host(xp, column_norms(space, residual))
        book.finish(
            xp,
            X,
            positions,
            [Status.MAX_ITERATIONS] * len(positions),
            [float(v) for v in final_norms],
        )
        X = X[:, :0]
    info = {"n_residual_checks": n_checks}
    return make_result(system, book, X, n_matvec=n_matvec, n_iter=n_iter, info=info)
