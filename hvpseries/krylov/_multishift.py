"""Multi-shift conjugate gradients: ``(A + s_j I) x_j = b`` for many shifts in one Krylov space."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.linalg import eigvalsh_tridiagonal

from .._core._array_api import array_namespace, device, requires_grad
from .._core._checks import check_maxiter
from .._core._in_place import add_scaled_, add_scaled_columns_
from .._core._result import SolveResult, Status
from .._core._vector_space import VectorSpace
from .._solve._problem import Problem, finish, pose
from ._blocks import aggregate_status, column_dots, column_norms, take_columns, to_host

__all__ = ["cg_multishift"]


def cg_multishift(
    A: Any,
    b: Any,
    shifts: Any,
    *,
    rtol: float = 1e-5,
    atol: float = 0.0,
    maxiter: int | None = None,
    callback: Callable[[Any], None] | None = None,
    throw: bool = False,
) -> SolveResult:
    r"""Solve ``(A + s_j I) x_j = b`` for all shifts ``s_j`` with one matvec per iteration.

    Parameters
    ----------
    A : LinearOperator or array
        A symmetric operator of shape ``(n, n)`` such that ``A + min(shifts) I`` is positive
        definite (for example ``A`` positive semi-definite and all shifts positive).
    b : array
        Right-hand side ``(n,)`` or a block ``(n, k)``.
    shifts : sequence of float
        The shifts ``s_j`` (any order, repeats allowed), real and finite.
    rtol, atol : float
        Per-system tolerances: system ``j`` has converged when
        ``||b - (A + s_j I) x_j|| <= max(rtol ||b||, atol)`` (per column of a block).
    maxiter : int, optional
        Maximum number of iterations (``10 n`` by default).
    callback : callable, optional
        ``callback(xk)`` after each iteration with the current iterates, shape
        ``(len(shifts),) + b.shape``.
    throw : bool
        Raise :class:`hvpseries.ConvergenceError` instead of returning an unconverged result.

    Returns
    -------
    SolveResult
        ``x`` of shape ``(len(shifts),) + b.shape`` (``x[j]`` solves shift ``j``);
        ``residual_norm``, shape ``(len(shifts),)`` or ``(len(shifts), k)``: the true
        residuals of the returned solutions; ``info["shift_status"]``: the status of each
        shift (the worst over the columns). ``n_matvec`` counts the Krylov matvecs (one per
        iteration and column for all shifts together) plus the final true-residual check
        (one per shift and column).

    Raises
    ------
    TypeError, ValueError
        For invalid tolerances, shifts, shapes or an operator tagged non-symmetric.

    Notes
    -----
    Conjugate gradients is run on the base system ``A + s_min I``; the Krylov space is
    shift-invariant and the residual of every shifted system is collinear with the base
    residual, ``r_j = zeta_j r``, with ``zeta_j = 1 / R_i(-(s_j - s_min))`` for the CG residual
    polynomial ``R_i`` of the base system [1]_. The ``zeta_j`` follow from the CG coefficients
    by a scalar three-term recurrence (in ratio form, free of overflow), so each iteration costs
    one matvec and two vector updates per shift. A shift whose residual ``|zeta_j| ||r||`` meets
    the tolerance is retired and costs nothing afterwards. The base system converges last,
    since ``|zeta_j| <= 1``.

    The recurrence residuals are checked once at the end against the true residuals
    (one matvec per shift and column); a system whose true residual misses the tolerance is
    reported as ``Status.STAGNATED`` (the floating-point limit). ``p^H (A + s_min I) p <= 0``
    stops with ``Status.INDEFINITE``.

    References
    ----------
    .. [1] B. Jegerlehner, "Krylov space solvers for shifted linear systems",
       arXiv:hep-lat/9612014 (1996); A. Frommer, "BiCGStab(l) for families of shifted
       linear systems", Computing 70 (2003).

    Examples
    --------
    >>> import numpy as np
    >>> from hvpseries import krylov
    >>> A = np.diag([1.0, 2.0, 4.0])
    >>> result = krylov.cg_multishift(A, np.ones(3), [0.0, 1.0], rtol=1e-12)
    >>> result.x.shape, result.status.name
    ((2, 3), 'SUCCESS')
    >>> np.allclose(result.x[1], 1.0 / np.array([2.0, 3.0, 5.0]))
    True
    """
    problem = pose(A, b, method="cg_multishift", rtol=rtol, atol=atol, callback=callback)
    return finish(problem, run_cg_multishift(problem, shifts=shifts, maxiter=maxiter), throw=throw)


def run_cg_multishift(problem: Problem, *, shifts: Any, maxiter: Any = None) -> SolveResult:
    """Run multi-shift CG on a posed problem (see :func:`cg_multishift`); the raw result.

    Raises
    ------
    TypeError, ValueError
        For a bad ``maxiter`` or bad ``shifts`` (before any matvec).
    """
    check_maxiter(maxiter)
    shift_array = _checked_shifts(shifts)
    xp, b = problem.xp, problem.b
    if not problem.finite:
        nan = xp.full((shift_array.size, *b.shape), math.nan, dtype=b.dtype, device=device(b))
        return SolveResult(x=nan, status=Status.NONFINITE, n_matvec=0, n_iter=0)
    operator, vector, callback = problem.operator, problem.vector, problem.callback
    B = problem.block
    tol = np.broadcast_to(
        np.maximum(problem.rtol * problem.b_norms, problem.atol), (shift_array.size, B.shape[1])
    )
    n = operator.global_shape[0]
    run = multishift_solve(
        operator._matmat,
        B,
        shift_array,
        rhs_norms=problem.b_norms,
        tol=lambda ritz_min, y_norms: tol,
        maxiter=10 * n if maxiter is None else int(maxiter),
        callback=None if callback is None else (lambda X: callback(X[..., 0] if vector else X)),
        verify=True,
        space=problem.space,
    )
    shift_status = [aggregate_status(list(row)) for row in run.status]
    return SolveResult(
        x=run.x[..., 0] if vector else run.x,
        status=aggregate_status(shift_status),
        n_matvec=run.n_apply,
        n_iter=run.n_iter,
        residual_norm=run.residual[:, 0] if vector else run.residual,
        info={"shift_status": shift_status},
    )


def _checked_shifts(shifts: Any) -> np.ndarray:
    try:
        values = np.asarray([float(s) for s in np.ravel(np.asarray(shifts, dtype=object))])
    except (TypeError, ValueError) as error:
        message = f"shifts must be a sequence of real numbers, got {shifts!r}"
        raise TypeError(message) from error
    if values.size == 0 or not np.all(np.isfinite(values)):
        message = f"shifts must be a non-empty sequence of finite numbers, got {shifts!r}"
        raise ValueError(message)
    return values


@dataclass
class MultishiftRun:
    """Raw outcome of :func:`multishift_solve` (host-side bookkeeping, device solutions)."""

    x: Any  # (m, n, k) on the device
    status: np.ndarray  # (m, k) of Status
    residual: np.ndarray  # (m, k): true residuals if verified, else recurrence estimates
    n_apply: int  # operator applications, one per column
    n_iter: int
    ritz_min: np.ndarray  # (k,): smallest Ritz value of `apply` (without shift) at the end


def _quiet_host_arithmetic(solve: Callable[..., MultishiftRun]) -> Callable[..., MultishiftRun]:
    """Run ``solve`` without NumPy's overflow and 0/0 warnings, the user's code as called.

    A float32 run on a badly conditioned operator can overflow its host CG coefficients: the
    columns then end NONFINITE or STAGNATED (reported) instead of warning. The operator and
    the callback run under the caller's NumPy error settings, so their warnings still show.
    """

    @functools.wraps(solve)
    def wrapper(apply: Callable[[Any], Any], *args: Any, **kwargs: Any) -> MultishiftRun:
        caller = np.geterr()

        def as_called(function: Callable[[Any], Any]) -> Callable[[Any], Any]:
            def call(value: Any) -> Any:
                with np.errstate(**caller):
                    return function(value)

            return call

        if kwargs.get("callback") is not None:
            kwargs["callback"] = as_called(kwargs["callback"])
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return solve(as_called(apply), *args, **kwargs)

    return wrapper


@_quiet_host_arithmetic
def multishift_solve(
    apply: Callable[[Any], Any],
    B: Any,
    shifts: np.ndarray,
    *,
    rhs_norms: np.ndarray,
    tol: Callable[[np.ndarray, np.ndarray], np.ndarray],
    maxiter: int,
    callback: Callable[[Any], None] | None = None,
    verify: bool = True,
    ritz_every: int = 0,
    weights: np.ndarray | None = None,
    rhs_weight: float = 0.0,
    space: VectorSpace | None = None,
) -> MultishiftRun:
    """Multi-shift CG on ``apply`` (a ``matmat``) for the block ``B`` (n, k) and all ``shifts``.

    ``rhs_norms`` are the column norms of ``B`` on the host (:attr:`Problem.b_norms`), so ``B``
    is not reduced again. ``tol(ritz_min, y_norms)`` returns the residual tolerances, shape
    ``(m, k)``; ``ritz_min`` (shape ``(k,)``) holds the smallest Ritz value of ``apply``
    (without shift) per column and ``y_norms`` the norms of ``sum_j weights[j] x_j + rhs_weight
    b`` per column, both refreshed every ``ritz_every`` iterations (``nan`` before the first
    refresh, or always when ``ritz_every`` is 0 or ``weights`` is None). The rational method
    uses them to set its tolerances from the spectrum and the size of the answer as they are
    learned. Inner products and norms are those of ``space`` (the operator's vector space;
    local by default).
    """
    xp = array_namespace(B)
    run = _ShiftedCG.start(B, shifts, rhs_norms, VectorSpace(xp) if space is None else space)
    base = run.base

    def apply_base(V: Any) -> Any:
        out = apply(V)
        return out + base * V if base != 0.0 else out

    for iteration in range(1, maxiter + 1):
        if not run.active_columns:
            break
        run.n_iter = iteration
        indefinite = run.step(apply_base, first=iteration == 1)
        if ritz_every and iteration % ritz_every == 0:
            run.refresh(weights, rhs_weight)
        if callback is not None:
            callback(run.assemble())
        if not run.retire(run.judge(tol, indefinite)):
            break
    x = run.solutions()
    residual = run.residual_estimate
    if verify:
        residual = _verify(run, apply, x, shifts, tol)
    final_ritz = np.array(
        [_smallest_ritz(run.diagonal[j], run.offdiagonal[j]) - base for j in range(run.k)]
    )
    return MultishiftRun(
        x=x,
        status=run.status,
        residual=residual,
        n_apply=run.n_apply,
        n_iter=run.n_iter,
        ritz_min=final_ritz,
    )


@dataclass
class _ShiftedCG:
    """The state of a multi-shift CG run on the base system ``apply + s_min I``.

    The device blocks hold the active shifts (axis 0 of ``X`` and ``P_shift``) and the active
    columns (the last axis); the host arrays are indexed by (original shift, column), or by
    active position for the CG scalars. A (shift, column) pair that stops keeps its solution
    in ``results``.
    """

    xp: Any
    space: VectorSpace
    B: Any
    base: float
    relative: np.ndarray  # shifts - base
    status: np.ndarray  # (m, k) of Status
    residual_estimate: np.ndarray  # (m, k)
    converged: np.ndarray  # (m, k) of bool
    results: dict[tuple[int, int], Any]
    active_shifts: list[int]
    active_columns: list[int]
    X: Any  # (active shifts, n, active columns)
    R: Any
    P: Any
    P_shift: Any
    rho: np.ndarray
    alpha_prev: np.ndarray
    beta_prev: np.ndarray
    ratio: np.ndarray  # q_i = R_i(-s) / R_{i-1}(-s), per active shift and column
    zeta: np.ndarray
    diagonal: list[list[float]]  # the Lanczos matrix of the base, per column
    offdiagonal: list[list[float]]
    ritz_min: np.ndarray
    y_norms: np.ndarray
    n_apply: int = 0
    n_iter: int = 0

    @property
    def k(self) -> int:
        """The number of columns of the right-hand-side block ``B``."""
        return int(self.B.shape[1])

    @classmethod
    def start(
        cls, B: Any, shifts: np.ndarray, rhs_norms: np.ndarray, space: VectorSpace
    ) -> _ShiftedCG:
        """Return the state before the first iteration (zero columns of ``B`` solved by 0)."""
        xp = space.xp
        n, k = B.shape
        m = shifts.size
        base = float(np.min(shifts))
        status = np.full((m, k), Status.MAX_ITERATIONS, dtype=object)
        residual_estimate = np.full((m, k), np.nan)
        results: dict[tuple[int, int], Any] = {}
        zero_columns = [j for j in range(k) if rhs_norms[j] == 0]
        for j in zero_columns:
            for i in range(m):
                results[(i, j)] = xp.zeros((n,), dtype=B.dtype, device=device(B))
                status[i, j] = Status.SUCCESS
                residual_estimate[i, j] = 0.0
        active_columns = [j for j in range(k) if j not in zero_columns]
        R = take_columns(xp, B, active_columns) if zero_columns else B
        X = xp.zeros((m, n, len(active_columns)), dtype=B.dtype, device=device(B))
        active = len(active_columns)
        return cls(
            xp=xp,
            space=space,
            B=B,
            base=base,
            relative=shifts - base,
            status=status,
            residual_estimate=residual_estimate,
            converged=np.zeros((m, k), dtype=bool),
            results=results,
            active_shifts=list(range(m)),
            active_columns=active_columns,
            X=X,
            R=R,
            P=R,
            P_shift=xp.stack([R] * m, axis=0) if active_columns else X,
            rho=to_host(xp, column_dots(space, R, R)) if active_columns else np.zeros(0),
            alpha_prev=np.ones(active),
            beta_prev=np.zeros(active),
            ratio=np.ones((m, active)),
            zeta=np.ones((m, active)),
            diagonal=[[] for _ in range(k)],
            offdiagonal=[[] for _ in range(k)],
            ritz_min=np.full(k, np.nan),
            y_norms=np.full(k, np.nan),
        )

    def step(self, apply_base: Callable[[Any], Any], *, first: bool) -> list[int]:
        """One CG step of the base system and of every active shifted one.

        Returns the active positions of the columns with ``p^H (A + s_min I) p <= 0``.
        """
        xp, space, B = self.xp, self.space, self.B
        Q = apply_base(self.P)
        self.n_apply += len(self.active_columns)
        curvature = to_host(xp, column_dots(space, self.P, Q))
        indefinite = [c for c in range(len(self.active_columns)) if not curvature[c] > 0]
        alpha = self.rho / np.where(curvature > 0, curvature, 1.0)
        alpha[indefinite] = 0.0
        # shifted step sizes from the ratio recurrence q_{i+1} = 1 + c + alpha s - c / q_i
        c = self.beta_prev * alpha / self.alpha_prev
        ratio_next = (
            1.0
            + c[None, :]
            + alpha[None, :] * self.relative[self.active_shifts][:, None]
            - (c[None, :] / self.ratio)
        )
        alpha_shift = alpha[None, :] / ratio_next
        # in place on the run's own blocks (X, P_shift, and R and P once they are no longer
        # the caller's B), never where autograd records the solve
        in_place = not (requires_grad(Q) or requires_grad(self.P_shift))
        if in_place:
            self.X = _add_per_shift_(xp, self.X, self.P_shift, alpha_shift)
        else:
            self.X = self.X + _to_device(xp, alpha_shift, B)[:, None, :] * self.P_shift
        if in_place and self.R is not B and self.R is not self.P:
            self.R = add_scaled_columns_(self.R, Q, _to_device(xp, -alpha, B))
        else:
            self.R = self.R - _to_device(xp, alpha, B) * Q
        rho_next = to_host(xp, column_dots(space, self.R, self.R))
        beta = rho_next / np.where(self.rho > 0, self.rho, 1.0)
        self.zeta = self.zeta / ratio_next
        beta_shift = beta[None, :] / (ratio_next * ratio_next)
        if in_place and self.P is not B and self.P is not self.R:
            self.P *= _to_device(xp, beta, B)
            self.P += self.R
        else:
            self.P = self.R + _to_device(xp, beta, B) * self.P
        if in_place:
            self.P_shift *= _to_device(xp, beta_shift, B)[:, None, :]
            self.P_shift = _add_per_shift_(xp, self.P_shift, self.R, self.zeta)
        else:
            self.P_shift = (
                _to_device(xp, self.zeta, B)[:, None, :] * self.R[None, :, :]
                + _to_device(xp, beta_shift, B)[:, None, :] * self.P_shift
            )
        self._extend_lanczos(alpha, beta, first=first)
        self.rho, self.alpha_prev, self.beta_prev, self.ratio = rho_next, alpha, beta, ratio_next
        return indefinite

    def _extend_lanczos(self, alpha: np.ndarray, beta: np.ndarray, *, first: bool) -> None:
        """Append this step's entries of the base's Lanczos matrix (from the CG coefficients)."""
        for c_pos, j in enumerate(self.active_columns):
            if alpha[c_pos] > 0:
                previous = 0.0 if first else self.beta_prev[c_pos] / self.alpha_prev[c_pos]
                self.diagonal[j].append(1.0 / alpha[c_pos] + previous)
                self.offdiagonal[j].append(math.sqrt(max(beta[c_pos], 0.0)) / alpha[c_pos])

    def refresh(self, weights: np.ndarray | None, rhs_weight: float) -> None:
        """Update the smallest Ritz values (and the norms of the weighted sum, given weights)."""
        for j in self.active_columns:
            self.ritz_min[j] = _smallest_ritz(self.diagonal[j], self.offdiagonal[j]) - self.base
        if weights is not None:
            self.y_norms = _combined_norms(self.space, self.assemble(), weights, rhs_weight, self.B)

    def judge(
        self, tol: Callable[[np.ndarray, np.ndarray], np.ndarray], indefinite: list[int]
    ) -> list[int]:
        """Mark the converged (shift, column) pairs, ``|zeta| ||r|| <= tol``.

        Returns the active positions of the columns that stop whatever their shifts' state
        (indefinite or non-finite), whose unconverged shifts get that status.
        """
        estimate = np.abs(self.zeta) * np.sqrt(np.maximum(self.rho, 0.0))[None, :]
        tolerance = np.asarray(tol(self.ritz_min, self.y_norms))
        for a, i in enumerate(self.active_shifts):
            for c_pos, j in enumerate(self.active_columns):
                self.residual_estimate[i, j] = estimate[a, c_pos]
                if estimate[a, c_pos] <= tolerance[i, j]:
                    self.converged[i, j] = True
        nonfinite = [c for c in range(len(self.active_columns)) if not np.isfinite(self.rho[c])]
        stop_columns = sorted(set(indefinite) | set(nonfinite))
        for c_pos in stop_columns:
            j = self.active_columns[c_pos]
            for i in self.active_shifts:
                if not self.converged[i, j]:
                    self.status[i, j] = (
                        Status.INDEFINITE if c_pos in indefinite else Status.NONFINITE
                    )
        return stop_columns

    def retire(self, stop_columns: list[int]) -> bool:
        """Drop the columns and shifts that are done; False when no column is left."""
        done_columns = [
            c_pos
            for c_pos, j in enumerate(self.active_columns)
            if c_pos in stop_columns or all(self.converged[i, j] for i in self.active_shifts)
        ]
        if done_columns:
            self._retire_columns(done_columns)
            if not self.active_columns:
                return False
        done_shifts = [
            a
            for a, i in enumerate(self.active_shifts)
            if all(self.converged[i, j] for j in self.active_columns)
        ]
        if done_shifts:
            self._retire_shifts(done_shifts)
        return True

    def _store_solutions(
        self, shift_positions: Sequence[int], column_positions: Sequence[int]
    ) -> None:
        """Record the current solutions at these active (shift, column) positions as final.

        Parameters
        ----------
        shift_positions, column_positions : sequence of int
            Positions in ``active_shifts`` and ``active_columns``: every pair of one of each
            is stored in ``results``, keyed by the original (shift, column) indices.
        """
        for a in shift_positions:
            i = self.active_shifts[a]
            for c_pos in column_positions:
                self.results[(i, self.active_columns[c_pos])] = self.X[a, :, c_pos]

    def _retire_columns(self, done: list[int]) -> None:
        xp = self.xp
        self._store_solutions(range(len(self.active_shifts)), done)
        keep = _remaining(len(self.active_columns), done)
        self.active_columns = [self.active_columns[c] for c in keep]
        if not self.active_columns:
            return
        self.X, self.P_shift = (take_columns(xp, M_, keep, axis=2) for M_ in (self.X, self.P_shift))
        self.R, self.P = (take_columns(xp, M_, keep, axis=1) for M_ in (self.R, self.P))
        self.rho, self.alpha_prev = self.rho[keep], self.alpha_prev[keep]
        self.beta_prev = self.beta_prev[keep]
        self.ratio, self.zeta = self.ratio[:, keep], self.zeta[:, keep]

    def _retire_shifts(self, done: list[int]) -> None:
        xp = self.xp
        self._store_solutions(done, range(len(self.active_columns)))
        keep = _remaining(len(self.active_shifts), done)
        self.active_shifts = [self.active_shifts[a] for a in keep]
        self.X, self.P_shift = (take_columns(xp, M_, keep, axis=0) for M_ in (self.X, self.P_shift))
        self.ratio, self.zeta = self.ratio[keep, :], self.zeta[keep, :]

    def assemble(self) -> Any:
        """All current solutions, shape ``(m, n, k)``: stopped ones and the active block."""
        xp = self.xp
        slabs = []
        for i in range(self.status.shape[0]):
            columns = []
            for j in range(self.k):
                if (i, j) in self.results:
                    columns.append(self.results[(i, j)])
                else:
                    position = (self.active_shifts.index(i), self.active_columns.index(j))
                    columns.append(self.X[position[0], :, position[1]])
            slabs.append(xp.stack(columns, axis=1))
        return xp.stack(slabs, axis=0)

    def solutions(self) -> Any:
        """End the run: the solutions ``(m, n, k)``; converged pairs still open are SUCCESS."""
        xp = self.xp
        self._store_solutions(range(len(self.active_shifts)), range(len(self.active_columns)))
        m, k = self.status.shape
        for i in range(m):
            for j in range(k):
                if self.converged[i, j] and self.status[i, j] is Status.MAX_ITERATIONS:
                    self.status[i, j] = Status.SUCCESS
        return xp.stack(
            [xp.stack([self.results[(i, j)] for j in range(k)], axis=1) for i in range(m)]
        )


def _remaining(count: int, done: list[int]) -> list[int]:
    """Return the positions ``0, ..., count - 1`` that are not in ``done``, in order.

    Parameters
    ----------
    count : int
        The number of active positions (shifts or columns).
    done : list of int
        The positions that retire.

    Returns
    -------
    list of int
        The positions that stay active.
    """
    return [position for position in range(count) if position not in done]


def _verify(
    run: _ShiftedCG,
    apply: Callable[[Any], Any],
    x: Any,
    shifts: np.ndarray,
    tol: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> np.ndarray:
    """Return the true residual norms ``(m, k)``; mark a SUCCESS above its tolerance STAGNATED.

    One block matvec over all shifts and columns, in (rows, shift, column) layout, so that the
    ``m k`` residual norms are one ``space.norm`` call.
    """
    xp, B = run.xp, run.B
    n, k = B.shape
    m = shifts.size
    flat = xp.reshape(xp.permute_dims(x, (1, 0, 2)), (n, m * k))
    applied = xp.reshape(apply(flat), (n, m, k))
    shifts_device = xp.asarray(shifts, dtype=B.dtype, device=device(B))[None, :, None]
    true = B[:, None, :] - applied - shifts_device * xp.reshape(flat, (n, m, k))
    run.n_apply += m * k
    residual = np.reshape(
        to_host(xp, column_norms(run.space, xp.reshape(true, (n, m * k)))), (m, k)
    )
    base_tol = np.asarray(tol(run.ritz_min, run.y_norms))
    for i in range(m):
        for j in range(k):
            if run.status[i, j] is Status.SUCCESS and not residual[i, j] <= base_tol[i, j]:
                run.status[i, j] = Status.STAGNATED
    return residual


def _combined_norms(
    space: VectorSpace, X: Any, weights: np.ndarray, rhs_weight: float, B: Any
) -> np.ndarray:
    """Norms per column of ``sum_j weights[j] X[j] + rhs_weight B``."""
    xp = space.xp
    w = xp.asarray(weights, dtype=X.dtype, device=device(X))[:, None, None]
    Y = xp.sum(w * X, axis=0) + rhs_weight * B
    return to_host(xp, column_norms(space, Y))


def _add_per_shift_(xp: Any, Y: Any, X: Any, scales: np.ndarray) -> Any:
    """Add ``scales[i, j] X[i, :, j]`` to ``Y[i, :, j]`` in place and return ``Y``.

    ``Y`` is ``(shifts, n, k)``; ``X`` is of that shape, or one ``(n, k)`` block for every
    shift; ``scales`` is ``(shifts, k)`` on the host. On NumPy with one column, one BLAS
    ``axpy`` per shift (each ``Y[i]`` a contiguous view).
    """
    if isinstance(Y, np.ndarray) and Y.shape[2] == 1:
        for i in range(Y.shape[0]):
            add_scaled_(Y[i], X[i] if X.ndim == 3 else X, float(scales[i, 0]))
        return Y
    block = X if X.ndim == 3 else X[None, :, :]
    return add_scaled_columns_(Y, block, _to_device(xp, scales, Y)[:, None, :])


def _to_device(xp: Any, values: np.ndarray, like: Any) -> Any:
    return xp.asarray(values, dtype=like.dtype, device=device(like))


def _smallest_ritz(diagonal: list[float], offdiagonal: list[float]) -> float:
    """Smallest eigenvalue of the (small) Lanczos tridiagonal, on the host with SciPy."""
    if not diagonal:
        return math.nan
    d = np.asarray(diagonal)
    e = np.asarray(offdiagonal[: d.size - 1])
    if not (np.all(np.isfinite(d)) and np.all(np.isfinite(e))):
        return math.nan  # overflowed coefficients: the run reports NONFINITE, not a crash
    return float(eigvalsh_tridiagonal(d, e, select="i", select_range=(0, 0))[0])
