"""MINRES: minimal residual iterations for symmetric (possibly indefinite) systems."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from .._core._array_api import epsilon, requires_grad
from .._core._in_place import add_scaled_columns_
from .._core._result import SolveResult, Status
from .._solve._problem import Problem, finish, pose
from ._blocks import (
    BlockSolve,
    LinearSystem,
    StoppedColumns,
    column_dots,
    linear_system,
    take_all,
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
        A tolerance passed positionally, a non-numeric tolerance or ``shift`` (a bool
        included), mixed array libraries.
    ValueError
        A non-finite ``shift``, negative or non-finite tolerances, ``maxiter < 1``, shape
        mismatches, or an operator (``A`` or ``M``) tagged non-symmetric.

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
    return _MinimalResidual(system, shift, callback=problem.callback).run()


class _MinimalResidual(BlockSolve):
    """MINRES on the active columns: the Lanczos vectors and the QR factor's rotations.

    ``R1, R2`` are the last two (unnormalised) Lanczos vectors, ``Y = M R2``, ``W, W2`` the
    last two search directions; ``phibar`` estimates the M-norm of the residual.
    """

    def __init__(self, system: LinearSystem, shift: float, *, callback: Any) -> None:
        operator = system.operator

        def apply(V: Any) -> Any:
            out = operator.matmat(V)
            return out - shift * V if shift != 0.0 else out

        super().__init__(system, apply, callback=callback)
        self.preconditioner = system.preconditioner
        self.eps = epsilon(system.xp, operator.dtype)

    @property
    def threshold(self) -> np.ndarray:
        """The per-column thresholds for the preconditioned residual estimate (see ``start``)."""
        return self.trigger

    def precondition(self, V: Any) -> Any:
        """Return ``M V`` (``V`` without a preconditioner)."""
        return self.preconditioner.matmat(V) if self.preconditioner is not None else V

    def start(self) -> bool:
        """Set up the first Lanczos vector and rotations; return whether a column is active."""
        xp = self.xp
        R1 = self.initial_residual()
        Y = self.precondition(R1)
        beta_squared = column_dots(self.space, R1, Y)
        r_norms = self.initial_residual_norms(R1)
        host_beta_squared = to_host(xp, beta_squared)
        # columns that stop before any iteration
        stopped = StoppedColumns()
        for j in range(self.book.k):
            if self.solved_at_start(r_norms, j):
                status = Status.SUCCESS
            elif host_beta_squared[j] <= 0:
                status = Status.INDEFINITE if host_beta_squared[j] < 0 else Status.BREAKDOWN
            elif not np.isfinite(r_norms[j]) or not np.isfinite(host_beta_squared[j]):
                status = Status.NONFINITE
            else:
                continue
            stopped.add(j, status, float(r_norms[j]))
        if stopped:
            keep = self.retire(stopped)
            if keep is None:
                return False
            R1, Y, beta_squared = take_all(xp, keep, R1, Y, beta_squared)
            r_norms, host_beta_squared = r_norms[keep], host_beta_squared[keep]
        self._set_up(R1, Y, beta_squared, r_norms, host_beta_squared)
        return True

    def _set_up(
        self, R1: Any, Y: Any, beta_squared: Any, r_norms: np.ndarray, host_beta_squared: Any
    ) -> None:
        """Set the recurrences' starting state from the first residual ``R1`` and ``M R1``."""
        xp = self.xp
        beta1 = xp.sqrt(beta_squared)
        # the recurrence estimates the M-norm of the residual; start the trigger from the ratio
        # of the 2-norm to the M-norm of the first residual (exactly 1 without a preconditioner)
        self.trigger = self.tol * r_norms / np.sqrt(host_beta_squared)
        zeros = xp.zeros_like(beta1)
        self.old_beta, self.beta, self.phibar = zeros, beta1, beta1
        self.dbar, self.epsln = zeros, zeros
        self.cs, self.sn = zeros - 1.0, zeros
        # X and the directions W are updated in place (three separate buffers; X starts from
        # the system's own copy of x0, or zeros), never where autograd records the solve.
        self.in_place = not any(requires_grad(v) for v in (R1, self.X))
        self.W, self.W2 = xp.zeros_like(self.X), xp.zeros_like(self.X)
        self.R1, self.R2, self.Y = R1, R1, Y
        # the diagonal of the QR factor of the Lanczos matrix gives a condition estimate;
        # beyond 0.1 / eps the system is singular to working precision and the iterates blow up
        self.gamma_max, self.gamma_min = zeros, zeros + float(xp.finfo(beta1.dtype).max)
        self.singular_limit = 0.1 / self.eps
        self.matrix_norm_squared = zeros
        self.lsq_limit = self.eps  # (sqrt(eps))^2
        self.next_lsq_check = np.zeros(self.width)  # iteration from which the flag counts again

    def step(self, iteration: int) -> bool:
        """Take one MINRES iteration on the active block; return whether a column is left."""
        xp = self.xp
        V, alpha, beta_squared = self._lanczos_step()
        least_squares = self._update_solution(V, alpha)
        self.report_progress()
        phibar = self.phibar
        threshold = self.device_threshold(phibar)
        singular = self.gamma_max >= self.singular_limit * self.gamma_min
        flags = (phibar <= threshold) | (beta_squared <= 0) | ~xp.isfinite(phibar)
        flags = flags | singular | least_squares
        if not bool(xp.any(flags)):
            return True
        stopped, checked = self._sort_flagged(iteration, beta_squared, singular, least_squares)
        if not stopped:
            return True
        missing = [p for p in stopped.positions if p not in checked]
        if missing:
            self.fill_true_residuals(stopped, missing)
        return self._retire(stopped)

    def _lanczos_step(self) -> tuple[Any, Any, Any]:
        """Extend the Lanczos basis by one vector; return ``V``, ``alpha`` and ``beta^2``."""
        xp, space = self.xp, self.space
        V = self.Y / self.beta
        Y = self.apply(V)
        self.n_matvec += self.width
        previous = self.old_beta > 0
        Y = (
            Y
            - xp.where(previous, self.beta / xp.where(previous, self.old_beta, 1.0), 0.0) * self.R1
        )
        alpha = column_dots(space, V, Y)
        Y = add_scaled_columns_(Y, self.R2, -(alpha / self.beta))  # Y is new: ours
        self.R1, self.R2 = self.R2, Y
        self.Y = self.precondition(self.R2)
        self.old_beta = self.beta
        beta_squared = column_dots(space, self.R2, self.Y)
        self.beta = xp.sqrt(xp.where(beta_squared > 0, beta_squared, 0.0))
        return V, alpha, beta_squared

    def _update_solution(self, V: Any, alpha: Any) -> Any:
        """Apply the previous rotation, build and apply the new one, and update ``X``.

        Returns the flags of the columns whose ``||A r|| / (||A|| ||r||)`` is tiny.
        """
        xp, beta = self.xp, self.beta
        old_epsln = self.epsln
        delta = self.cs * self.dbar + self.sn * alpha
        gbar = self.sn * self.dbar - self.cs * alpha
        self.epsln = self.sn * beta
        self.dbar = -self.cs * beta
        gamma = xp.sqrt(gbar * gbar + beta * beta)
        # ||A r|| / (||A|| ||r||), SciPy's test2: tiny when r is a least-squares residual
        self.matrix_norm_squared = (
            self.matrix_norm_squared + alpha * alpha + self.old_beta * self.old_beta + beta * beta
        )
        least_squares = (
            gbar * gbar + self.dbar * self.dbar <= self.lsq_limit * self.matrix_norm_squared
        )
        gamma = xp.where(gamma > self.eps, gamma, self.eps)
        self.gamma_max = xp.maximum(self.gamma_max, gamma)
        self.gamma_min = xp.minimum(self.gamma_min, gamma)
        self.cs = gbar / gamma
        self.sn = beta / gamma
        phi = self.cs * self.phibar
        self.phibar = self.sn * self.phibar
        W1, self.W2 = self.W2, self.W
        if self.in_place and (requires_grad(V) or requires_grad(gamma)):
            self.in_place = False  # A or M carries autograd parameters: from here, new arrays
        if self.in_place:
            # the oldest direction's buffer becomes the new one: (V - e W1 - d W2) / gamma
            W1 *= -old_epsln
            W1 = add_scaled_columns_(W1, self.W2, -delta)
            W1 += V
            W1 /= gamma
            self.W = W1
            self.X = add_scaled_columns_(self.X, self.W, phi)
        else:
            self.W = (V - old_epsln * W1 - delta * self.W2) / gamma
            self.X = self.X + phi * self.W
        return least_squares

    def _sort_flagged(
        self, iteration: int, beta_squared: Any, singular: Any, least_squares: Any
    ) -> tuple[StoppedColumns, set[int]]:
        """Stop or verify the flagged columns; return the stopped and the checked positions.

        A non-finite estimate stops a column with ``Status.NONFINITE``. A column whose
        estimate passes the trigger, whose Lanczos recurrence ended (``beta^2 <= 0``), which is
        singular to working precision, or whose residual looks like a least-squares one is
        checked by its true residual. A check that fails lowers the trigger by the observed
        ratio and pauses the least-squares flag for ``_LSQ_RECHECK`` iterations.
        """
        xp = self.xp
        host_phibar = to_host(xp, self.phibar)
        host_beta_squared = to_host(xp, beta_squared)
        host_singular = to_host(xp, xp.astype(singular, self.phibar.dtype)) > 0
        host_lsq = (to_host(xp, xp.astype(least_squares, self.phibar.dtype)) > 0) & (
            self.next_lsq_check <= iteration
        )
        stopped = StoppedColumns()
        candidates = []
        for position in range(self.width):
            if not np.isfinite(host_phibar[position]) or not np.isfinite(
                host_beta_squared[position]
            ):
                stopped.add(position, Status.NONFINITE)
            elif (
                host_phibar[position] <= self.trigger[position]
                or host_beta_squared[position] <= 0
                or host_singular[position]
                or host_lsq[position]
            ):
                candidates.append(position)
        if not candidates:
            return stopped, set()

        def reason(position: int) -> Status | None:
            if host_beta_squared[position] < 0:
                return Status.INDEFINITE  # r^H M r < 0: M is indefinite
            if host_beta_squared[position] == 0 or host_singular[position]:
                # an invariant subspace was found or the system is singular to working
                # precision: the iteration cannot improve this column any further
                return Status.STAGNATED
            return None

        _, true_norms, failed = self.check_true_residuals(candidates, stopped, reason)
        for i in failed:
            position = candidates[i]
            self.next_lsq_check[position] = iteration + _LSQ_RECHECK
            ratio = self.tol[position] / true_norms[i]
            lowered = 0.9 * min(self.trigger[position], host_phibar[position]) * ratio
            self.trigger[position] = lowered
            self.forget_device_threshold()
        return stopped, set(candidates)

    def _retire(self, stopped: StoppedColumns) -> bool:
        """Do :meth:`BlockSolve.retire` and shrink the MINRES state; return whether any is left."""
        keep = self.retire(stopped)
        if keep is None:
            return False
        xp = self.xp
        self.Y, self.R1, self.R2, self.W, self.W2 = take_all(
            xp, keep, self.Y, self.R1, self.R2, self.W, self.W2
        )
        self.old_beta, self.beta, self.dbar, self.epsln, self.phibar, self.cs, self.sn = take_all(
            xp, keep, self.old_beta, self.beta, self.dbar, self.epsln, self.phibar, self.cs, self.sn
        )
        self.gamma_max, self.gamma_min, self.matrix_norm_squared = take_all(
            xp, keep, self.gamma_max, self.gamma_min, self.matrix_norm_squared
        )
        self.trigger, self.next_lsq_check = self.trigger[keep], self.next_lsq_check[keep]
        return True
