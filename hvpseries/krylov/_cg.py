"""The conjugate gradient method for symmetric positive definite systems (blocks in lockstep)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._core._array_api import device, requires_grad
from .._core._in_place import add_scaled_columns_
from .._core._result import SolveResult, Status
from .._solve._problem import Problem, finish, pose
from ._blocks import (
    BlockSolve,
    LinearSystem,
    StoppedColumns,
    column_dots,
    column_norms,
    linear_system,
    replace_columns,
    take_all,
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
    return _ConjugateGradients(system, callback=problem.callback).run()


class _ConjugateGradients(BlockSolve):
    """CG on the active columns: residuals ``R``, directions ``P``, ``rho = r^H M r``."""

    def __init__(self, system: LinearSystem, *, callback: Any) -> None:
        super().__init__(system, system.operator.matmat, callback=callback)
        preconditioner = system.preconditioner
        self.precondition = preconditioner.matmat if preconditioner is not None else None
        self.restart = np.zeros(0, dtype=bool)  # columns given their true residual this step

    def start(self) -> bool:
        """Set up the first residual and direction; return whether any column is active."""
        R = self.initial_residual()
        norms = self.initial_residual_norms(R)
        # columns done before any iteration: a zero right-hand side or a good x0
        done = StoppedColumns()
        for j in range(self.book.k):
            if self.solved_at_start(norms, j):
                done.add(j, Status.SUCCESS, float(norms[j]))
        if done:
            keep = self.retire(done)
            if keep is None:
                return False
            R = take_columns(self.xp, R, keep)
        # X, R and P are updated in place (as SciPy's cg does), so none may share memory with
        # b or with another (X starts from the system's own copy of x0, or zeros; P is a copy
        # of M R, which may be a view of R or a buffer M reuses); never where autograd records
        # the solve (see step).
        self.in_place = not any(requires_grad(v) for v in (R, self.X))
        if self.in_place and R is self.B:
            R = self.xp.asarray(R, copy=True)
        self.R = R
        Z = self.precondition(self.R) if self.precondition is not None else self.R
        self.in_place = self.in_place and not requires_grad(Z)  # M with autograd parameters
        self.rho = column_dots(self.space, self.R, Z)
        self.P = self.xp.asarray(Z, copy=True) if self.in_place else Z
        return True

    def step(self, iteration: int) -> bool:
        """Take one CG iteration on the active block; return whether any column is left."""
        xp, space = self.xp, self.space
        Q = self.apply(self.P)
        self.n_matvec += self.width
        curvature = column_dots(space, self.P, Q)
        positive = curvature > 0
        alpha = xp.where(positive, self.rho / xp.where(positive, curvature, 1.0), 0.0)
        if self.in_place and (requires_grad(Q) or requires_grad(alpha)):
            self.in_place = False  # A or M carries autograd parameters: from here, new arrays
        if self.in_place:
            self.X = add_scaled_columns_(self.X, self.P, alpha)
            self.R = add_scaled_columns_(self.R, Q, -alpha)
        else:
            self.X = self.X + alpha * self.P
            self.R = self.R - alpha * Q
        del Q  # freed before a true-residual check needs two vectors of its own
        rho_next = None
        if self.precondition is None:
            rho_next = column_dots(space, self.R, self.R)
            norms = xp.sqrt(rho_next)  # r^H r >= 0; NaN stays NaN
        else:
            norms = column_norms(space, self.R)
        flags = (norms <= self.device_threshold(norms)) | ~positive
        flags = flags | ~xp.isfinite(norms) | ~xp.isfinite(curvature)
        self.report_progress()
        stopped = StoppedColumns()
        replaced = False
        if self.restart.any() or self.restart.size != self.width:
            self.restart = np.zeros(self.width, dtype=bool)
        if bool(xp.any(flags)):  # the rare path: a column may stop or get its true residual
            replaced = self._sort_flagged(norms, positive, curvature, stopped)
            # residuals of indefinite columns are reported as true residuals
            indefinite = [
                p
                for p, s in zip(stopped.positions, stopped.statuses, strict=True)
                if s is Status.INDEFINITE
            ]
            if indefinite:
                self.fill_true_residuals(stopped, indefinite)
            if stopped and self._retire(stopped) is None:
                return False
        if self.precondition is None:
            Z = self.R
            if stopped or replaced:
                rho_next = column_dots(space, self.R, self.R)
        else:
            preconditioned = self._precondition()
            if preconditioned is None:
                return False
            Z, rho_next = preconditioned
        self._update_direction(Z, rho_next)
        return True

    def _sort_flagged(
        self, norms: Any, positive: Any, curvature: Any, stopped: StoppedColumns
    ) -> bool:
        """Stop or verify the flagged columns; return whether a residual was replaced.

        A non-finite residual or curvature stops a column with ``Status.NONFINITE``, a
        curvature ``p^H A p <= 0`` with ``Status.INDEFINITE`` (the residual is filled in
        later); a column whose recursive residual passes the test is checked by its true
        residual, which replaces the recursive one if the check fails (residual replacement,
        the column restarts in :meth:`_update_direction`).
        """
        xp = self.xp
        host_norms = to_host(xp, norms)
        host_positive = to_host(xp, xp.astype(positive, norms.dtype)) > 0
        host_curvature = to_host(xp, curvature)
        candidates = []
        for position in range(self.width):
            if not (np.isfinite(host_norms[position]) and np.isfinite(host_curvature[position])):
                stopped.add(position, Status.NONFINITE)
            elif not host_positive[position]:
                stopped.add(position, Status.INDEFINITE)
            elif host_norms[position] <= self.tol[position]:
                candidates.append(position)
        if not candidates:
            return False
        true_R, _, failed = self.check_true_residuals(candidates, stopped)
        if not failed:
            return False
        positions = [candidates[i] for i in failed]
        self.R = replace_columns(xp, self.R, positions, take_columns(xp, true_R, failed))
        self.restart[positions] = True
        return True

    def _precondition(self) -> tuple[Any, Any] | None:
        """``Z = M R`` and ``rho = r^H M r``; stop the columns where ``M`` is not definite.

        Returns None if no column is left.
        """
        xp = self.xp
        Z = self.precondition(self.R)
        rho_next = column_dots(self.space, self.R, Z)
        # r^H M r <= 0 with r != 0: the preconditioner is not positive definite
        bad = rho_next <= 0
        if bool(xp.any(bad)):
            host_bad = to_host(xp, xp.astype(bad, rho_next.dtype)) > 0
            stopped = StoppedColumns()
            for position in range(self.width):
                if host_bad[position]:
                    stopped.add(position, Status.INDEFINITE)
            self.fill_true_residuals(stopped, stopped.positions)
            keep = self._retire(stopped)
            if keep is None:
                return None
            Z, rho_next = take_all(xp, keep, Z, rho_next)
        return Z, rho_next

    def _retire(self, stopped: StoppedColumns) -> list[int] | None:
        """Do :meth:`BlockSolve.retire` and shrink the CG state; return the kept positions."""
        keep = self.retire(stopped)
        if keep is not None:
            self.R, self.P, self.rho = take_all(self.xp, keep, self.R, self.P, self.rho)
            self.restart = self.restart[keep]
        return keep

    def _update_direction(self, Z: Any, rho_next: Any) -> None:
        """``P = Z + beta P`` with ``beta = rho_next / rho`` (zero for a restarted column)."""
        xp = self.xp
        beta = rho_next / self.rho
        if self.restart.any():
            # A replaced residual is not the recursive one that rho belongs to: beta from their
            # ratio (up to ||r_true||^2 / ||r_rec||^2, huge in float32) wrecks the direction.
            # Those columns restart CG from the current iterate (beta = 0), a valid CG run.
            mask = xp.asarray(self.restart, device=device(beta))
            beta = xp.where(mask, xp.zeros_like(beta), beta)
        if self.in_place:
            self.P *= beta
            self.P += Z
        else:
            self.P = Z + beta * self.P
        self.rho = rho_next

    def final_residual_norms(self) -> np.ndarray:
        """Return the true residual norms of the columns active when the budget ran out."""
        # the columns are copied out of the block as in every check (not ``B - A X`` on the
        # block): a copy can change the memory layout, and with it the last bits of ``A X``
        return self.true_residual(list(range(self.width)))[1]
