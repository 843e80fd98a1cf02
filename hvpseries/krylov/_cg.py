"""The conjugate gradient method for symmetric positive definite systems (blocks in lockstep)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .._core._array_api import device
from .._core._result import SolveResult, Status
from .._operators._base import LinearOperator
from .._solve._problem import Problem, finish, pose
from ._blocks import (
    ColumnBook,
    LinearSystem,
    column_dots,
    column_norms,
    linear_system,
    make_result,
    replace_columns,
    take_columns,
    to_host,
)

__all__ = ["cg"]


def cg(
    A: Any,
    b: Any,
    x0: Any = None,
    *,
    rtol: float = 1e-5,
    atol: float = 0.0,
    maxiter: int | None = None,
    M: Any = None,
    callback: Callable[[Any], None] | None = None,
    throw: bool = False,
) -> SolveResult:
    r"""Solve ``A x = b`` for a symmetric positive definite ``A`` by conjugate gradients.

    Parameters
    ----------
    A : LinearOperator or array
        A symmetric positive definite operator of shape ``(n, n)`` (anything
        :func:`hvpseries.aslinearoperator` accepts). Only ``A @ X`` is used.
    b : array
        Right-hand side of shape ``(n,)``, or a block ``(n, k)`` whose columns are solved
        together (one ``matmat`` per iteration).
    x0 : array, optional
        Starting guess of the shape of ``b`` (zero if omitted). It is never modified.
    rtol, atol : float
        Relative and absolute tolerances, see Notes.
    maxiter : int, optional
        Maximum number of iterations (``10 n`` by default, as in SciPy).
    M : LinearOperator or array, optional
        A symmetric positive definite preconditioner that approximates ``A^-1``
        (it is applied, not inverted).
    callback : callable, optional
        Called as ``callback(xk)`` after every iteration with the current iterate (shape of
        ``b``).
    throw : bool
        Raise :class:`hvpseries.ConvergenceError` instead of returning an unconverged result.

    Returns
    -------
    SolveResult
        ``x``, ``status``, ``n_matvec`` (including the matvecs of the initial and the
        true-residual checks), ``n_iter``, and ``residual_norm``: the true residual
        ``||b - A x||`` of the returned ``x`` (an array with one entry per column for a block).
        For a block, ``info["column_status"]`` lists each column's status.

    Raises
    ------
    TypeError
        A tolerance passed positionally, a non-numeric tolerance, mixed array libraries.
    ValueError
        Negative or non-finite tolerances, ``maxiter < 1``, shape mismatches, or an operator
        tagged non-symmetric.

    Notes
    -----
    The stopping test is SciPy's, per column:

    .. math:: \|b - A x\|_2 \le \max(\mathrm{rtol}\,\|b\|_2,\ \mathrm{atol}).

    The recursively updated residual triggers the test; before a column is declared
    converged its true residual ``b - A x`` is computed (one extra matvec, counted). If the
    true residual fails the test, it replaces the recursive one and CG restarts from the
    current iterate with it (residual replacement; the search direction is not kept, as its
    coefficient would mix the two residuals); if it no longer decreases between two such
    checks the column stops with ``Status.STAGNATED`` (the floating-point limit).

    A curvature ``p^H A p <= 0`` proves that ``A`` is not positive definite; the column stops
    with ``Status.INDEFINITE`` and keeps its last iterate (use :func:`minres` for indefinite
    systems). A preconditioner with ``r^H M r <= 0`` is reported the same way.

    A zero right-hand side returns ``x = 0`` at once (no matvec).

    References
    ----------
    M. R. Hestenes and E. Stiefel, "Methods of conjugate gradients for solving linear
    systems", J. Res. Nat. Bur. Standards 49 (1952).

    Examples
    --------
    >>> import numpy as np
    >>> from hvpseries import krylov
    >>> A = np.array([[4.0, 1.0], [1.0, 3.0]])
    >>> result = krylov.cg(A, np.array([1.0, 2.0]), rtol=1e-10)
    >>> result.status.name, np.allclose(A @ result.x, [1.0, 2.0])
    ('SUCCESS', True)
    """
    problem = pose(A, b, method="cg", rtol=rtol, atol=atol, x0=x0, callback=callback)
    return finish(problem, run_cg(problem, maxiter=maxiter, M=M), throw=throw)


def run_cg(problem: Problem, *, maxiter: Any = None, M: Any = None) -> SolveResult:
    """Run CG on a posed problem (see :func:`cg`); the result is the raw one, to finish."""
    system = linear_system(problem, maxiter=maxiter, M=M, method="cg")
    return _cg(system, callback=problem.callback)


def _cg(system: LinearSystem, *, callback: Any) -> SolveResult:
    xp = system.xp
    operator = system.operator
    space = operator.vector_space
    precondition = system.preconditioner.matmat if system.preconditioner is not None else None
    k = system.rhs.shape[1]
    book = ColumnBook(k)
    n_matvec = 0

    B = system.rhs
    if system.x0 is None:
        X = xp.zeros_like(B)
        R = B
    else:
        X = system.x0
        R = B - operator.matmat(X)
        n_matvec += k
    tol = system.tol.copy()
    # without x0 the residual is b, whose norms the problem has
    rnorm = system.rhs_norms if system.x0 is None else to_host(xp, column_norms(space, R))
    checked_once = system.x0 is not None  # with x0 the initial residual is a true residual
    last_true = np.full(k, np.inf)

    # columns done before any iteration: a zero right-hand side or a good x0
    initial_done = [
        j for j in range(k) if rnorm[j] <= tol[j] and (checked_once or system.rhs_norms[j] == 0)
    ]
    if initial_done:
        keep = book.finish(
            xp,
            X,
            initial_done,
            [Status.SUCCESS] * len(initial_done),
            [float(rnorm[j]) for j in initial_done],
        )
        X, R, B = (take_columns(xp, M_, keep) for M_ in (X, R, B))
        tol, last_true = tol[keep], last_true[keep]
    if not book.active:
        return make_result(system, book, X, n_matvec=n_matvec, n_iter=0, info={})

    Z = precondition(R) if precondition is not None else R
    rho = column_dots(space, R, Z)
    P = Z
    n_iter = 0
    n_checks = 0
    tol_device = None  # tol on the device, rebuilt whenever the active block shrinks
    for iteration in range(1, system.maxiter + 1):
        n_iter = iteration
        Q = operator.matmat(P)
        n_matvec += len(book.active)
        curvature = column_dots(space, P, Q)
        positive = curvature > 0
        alpha = xp.where(positive, rho / xp.where(positive, curvature, 1.0), 0.0)
        X = X + alpha * P
        R = R - alpha * Q
        if precondition is None:
            rho_next = column_dots(space, R, R)
            norms = xp.sqrt(rho_next)  # r^H r >= 0; NaN stays NaN
        else:
            norms = column_norms(space, R)
        if tol_device is None:
            tol_device = xp.asarray(tol, dtype=norms.dtype, device=device(norms))
        flags = (norms <= tol_device) | ~positive
        flags = flags | ~xp.isfinite(norms) | ~xp.isfinite(curvature)
        if callback is not None:
            callback(book.assemble(xp, X, system.vector))
        stopped: list[int] = []
        stopped_status: list[Status] = []
        stopped_residual: list[float] = []
        replaced = False
        restart = np.zeros(len(book.active), dtype=bool)  # columns given their true residual
        if bool(xp.any(flags)):
            host_norms = to_host(xp, norms)
            host_positive = to_host(xp, xp.astype(positive, norms.dtype)) > 0
            host_curvature = to_host(xp, curvature)
            candidates = []
            for position in range(len(book.active)):
                if not (
                    np.isfinite(host_norms[position]) and np.isfinite(host_curvature[position])
                ):
                    stopped += [position]
                    stopped_status += [Status.NONFINITE]
                    stopped_residual += [math.nan]
                elif not host_positive[position]:
                    stopped += [position]
                    stopped_status += [Status.INDEFINITE]
                    stopped_residual += [math.nan]  # filled in with the true residual below
                elif host_norms[position] <= tol[position]:
                    candidates.append(position)
            if candidates:
                n_checks += 1
                true_R, true_norms = _true_residual(xp, operator, B, X, candidates)
                n_matvec += len(candidates)
                failed, failed_R = [], []
                for i, position in enumerate(candidates):
                    if true_norms[i] <= tol[position]:
                        stopped += [position]
                        stopped_status += [Status.SUCCESS]
                        stopped_residual += [float(true_norms[i])]
                    elif true_norms[i] > 0.9 * last_true[position]:
                        stopped += [position]
                        stopped_status += [Status.STAGNATED]
                        stopped_residual += [float(true_norms[i])]
                    else:
                        last_true[position] = true_norms[i]
                        failed.append(position)
                        failed_R.append(i)
                if failed:
                    # residual replacement: continue from the true residual, restarted below
                    R = replace_columns(xp, R, failed, take_columns(xp, true_R, failed_R))
                    replaced = True
                    restart[failed] = True
        # residuals of indefinite columns are reported as true residuals
        indefinite = [
            p for p, s in zip(stopped, stopped_status, strict=True) if s is Status.INDEFINITE
        ]
        if indefinite:
            _, norms_indefinite = _true_residual(xp, operator, B, X, indefinite)
            n_matvec += len(indefinite)
            for p, value in zip(indefinite, norms_indefinite, strict=True):
                stopped_residual[stopped.index(p)] = float(value)
        if stopped:
            keep = book.finish(xp, X, stopped, stopped_status, stopped_residual)
            if not book.active:
                break
            X, R, B, P, rho = (take_columns(xp, M_, keep) for M_ in (X, R, B, P, rho))
            tol, last_true, tol_device = tol[keep], last_true[keep], None
            restart = restart[keep]
        if precondition is None:
            Z = R
            if stopped or replaced:
                rho_next = column_dots(space, R, R)
        else:
            Z = precondition(R)
            rho_next = column_dots(space, R, Z)
            # r^H M r <= 0 with r != 0: the preconditioner is not positive definite
            bad = rho_next <= 0
            if bool(xp.any(bad)):
                host_bad = to_host(xp, xp.astype(bad, rho_next.dtype)) > 0
                positions = [p for p in range(len(book.active)) if host_bad[p]]
                _, norms_bad = _true_residual(xp, operator, B, X, positions)
                n_matvec += len(positions)
                keep = book.finish(
                    xp,
                    X,
                    positions,
                    [Status.INDEFINITE] * len(positions),
                    [float(v) for v in norms_bad],
                )
                if not book.active:
                    break
                X, R, B, P, rho, rho_next, Z = (
                    take_columns(xp, M_, keep) for M_ in (X, R, B, P, rho, rho_next, Z)
                )
                tol, last_true, tol_device = tol[keep], last_true[keep], None
                restart = restart[keep]
        beta = rho_next / rho
        if restart.any():
            # A replaced residual is not the recursive one that rho belongs to: beta from their
            # ratio (up to ||r_true||^2 / ||r_rec||^2, huge in float32) wrecks the direction.
            # Those columns restart CG from the current iterate (beta = 0), a valid CG run.
            mask = xp.asarray(restart, device=device(beta))
            beta = xp.where(mask, xp.zeros_like(beta), beta)
        P = Z + beta * P
        rho = rho_next

    if book.active:
        # iteration budget used up: report the true residual of what is returned
        positions = list(range(len(book.active)))
        _, final_norms = _true_residual(xp, operator, B, X, positions)
        n_matvec += len(positions)
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


def _true_residual(
    xp: Any, operator: LinearOperator, B: Any, X: Any, positions: list[int]
) -> tuple[Any, np.ndarray]:
    """``B - A X`` on the given columns, and its column norms on the host."""
    residual = take_columns(xp, B, positions) - operator.matmat(take_columns(xp, X, positions))
    return residual, to_host(xp, column_norms(operator.vector_space, residual))
