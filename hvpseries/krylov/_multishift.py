"""Multi-shift conjugate gradients: ``(A + s_j I) x_j = b`` for many shifts in one Krylov space."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.linalg import eigvalsh_tridiagonal

from .._core._array_api import array_namespace, device
from .._core._checks import check_maxiter, check_tolerances
from .._core._result import SolveResult, Status
from .._core._vector_space import VectorSpace
from .._solve._rhs_scaling import scales_right_hand_side
from .._solve._validation import prepare_system, require_not_nonsymmetric
from ._blocks import aggregate_status, column_dots, column_norms, take_columns, to_host

__all__ = ["cg_multishift"]


@scales_right_hand_side()
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
    check_tolerances(rtol, atol)
    check_maxiter(maxiter)
    if callback is not None and not callable(callback):
        message = f"callback must be callable or None, got {type(callback).__name__}"
        raise TypeError(message)
    operator, b = prepare_system(A, b)
    require_not_nonsymmetric(operator, "cg_multishift")
    shift_array = _checked_shifts(shifts)
    xp = operator.xp
    if not operator.vector_space.all_finite(b):
        nan = xp.full((shift_array.size, *b.shape), math.nan, dtype=b.dtype, device=device(b))
        result = SolveResult(x=nan, status=Status.NONFINITE, n_matvec=0, n_iter=0)
        return result.raise_for_status() if throw else result
    vector = b.ndim == 1
    B = xp.reshape(b, (b.shape[0], 1)) if vector else b
    rhs_norms = to_host(xp, column_norms(operator.vector_space, B))
    tol = np.broadcast_to(np.maximum(rtol * rhs_norms, atol), (shift_array.size, B.shape[1]))
    n = operator.global_shape[0]
    run = multishift_solve(
        operator._matmat,
        B,
        shift_array,
        tol=lambda ritz_min, y_norms: tol,
        maxiter=10 * n if maxiter is None else int(maxiter),
        callback=None if callback is None else (lambda X: callback(X[..., 0] if vector else X)),
        verify=True,
        space=operator.vector_space,
    )
    x = run.x[..., 0] if vector else run.x
    shift_status = [aggregate_status(list(row)) for row in run.status]
    residual = run.residual[:, 0] if vector else run.residual
    result = SolveResult(
        x=x,
        status=aggregate_status(shift_status),
        n_matvec=run.n_apply,
        n_iter=run.n_iter,
        residual_norm=residual,
        info={"shift_status": shift_status},
    )
    return result.raise_for_status() if throw else result


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
    tol: Callable[[np.ndarray], np.ndarray],
    maxiter: int,
    callback: Callable[[Any], None] | None = None,
    verify: bool = True,
    ritz_every: int = 0,
    weights: np.ndarray | None = None,
    rhs_weight: float = 0.0,
    space: VectorSpace | None = None,
) -> MultishiftRun:
    """Multi-shift CG on ``apply`` (a ``matmat``) for the block ``B`` (n, k) and all ``shifts``.

    ``tol(ritz_min, y_norms)`` returns the residual tolerances, shape ``(m, k)``;
    ``ritz_min`` (shape ``(k,)``) holds the smallest Ritz value of ``apply`` (without shift) per
    column and ``y_norms`` the norms of ``sum_j weights[j] x_j + rhs_weight b`` per column, both
    refreshed every ``ritz_every`` iterations (``nan`` before the first refresh, or always when
    ``ritz_every`` is 0 or ``weights`` is None). The rational method uses them to set its
    tolerances from the spectrum and the size of the answer as they are learned. Inner products
    and norms are those of ``space`` (the operator's vector space; local by default).
    """
    xp = array_namespace(B)
    if space is None:
        space = VectorSpace(xp)
    n, k = B.shape
    m = shifts.size
    base = float(np.min(shifts))
    relative = shifts - base
    dtype = B.dtype

    def apply_base(V: Any) -> Any:
        out = apply(V)
        return out + base * V if base != 0.0 else out

    status = np.full((m, k), Status.MAX_ITERATIONS, dtype=object)
    residual_estimate = np.full((m, k), np.nan)
    results: dict[tuple[int, int], Any] = {}
    n_apply = 0

    rhs_norms = to_host(xp, column_norms(space, B))
    active_shifts = list(range(m))
    active_columns = list(range(k))
    converged = np.zeros((m, k), dtype=bool)  # indexed by original shift, column

    # zero right-hand sides are solved by x = 0
    zero_columns = [j for j in range(k) if rhs_norms[j] == 0]
    for j in zero_columns:
        for i in range(m):
            results[(i, j)] = xp.zeros((n,), dtype=dtype, device=device(B))
            status[i, j] = Status.SUCCESS
            residual_estimate[i, j] = 0.0
    active_columns = [j for j in active_columns if j not in zero_columns]

    R = take_columns(xp, B, active_columns) if zero_columns else B
    X = xp.zeros((m, n, len(active_columns)), dtype=dtype, device=device(B))
    P_shift = xp.stack([R] * m, axis=0) if active_columns else X
    P = R
    rho = to_host(xp, column_dots(space, R, R)) if active_columns else np.zeros(0)
    alpha_prev = np.ones(len(active_columns))
    beta_prev = np.zeros(len(active_columns))
    ratio = np.ones((m, len(active_columns)))  # q_i = R_i(-s) / R_{i-1}(-s)
    zeta = np.ones((m, len(active_columns)))
    diagonal: list[list[float]] = [[] for _ in range(k)]  # Lanczos matrix of the base, per column
    offdiagonal: list[list[float]] = [[] for _ in range(k)]
    ritz_min = np.full(k, np.nan)
    y_norms = np.full(k, np.nan)
    n_iter = 0

    def assemble(Xcur: Any) -> Any:
        slabs = []
        for i in range(m):
            columns = []
            for j in range(k):
                if (i, j) in results:
                    columns.append(results[(i, j)])
                else:
                    columns.append(Xcur[active_shifts.index(i), :, active_columns.index(j)])
            slabs.append(xp.stack(columns, axis=1))
        return xp.stack(slabs, axis=0)

    for iteration in range(1, maxiter + 1):
        if not active_columns:
            break
        n_iter = iteration
        Q = apply_base(P)
        n_apply += len(active_columns)
        curvature = to_host(xp, column_dots(space, P, Q))
        indefinite = [c for c in range(len(active_columns)) if not curvature[c] > 0]
        alpha = rho / np.where(curvature > 0, curvature, 1.0)
        alpha[indefinite] = 0.0
        # shifted step sizes from the ratio recurrence q_{i+1} = 1 + c + alpha s - c / q_i
        c = beta_prev * alpha / alpha_prev
        ratio_next = (
            1.0
            + c[None, :]
            + alpha[None, :] * relative[active_shifts][:, None]
            - (c[None, :] / ratio)
        )
        alpha_shift = alpha[None, :] / ratio_next
        X = X + _to_device(xp, alpha_shift, B)[:, None, :] * P_shift
        R = R - _to_device(xp, alpha, B) * Q
        rho_next = to_host(xp, column_dots(space, R, R))
        beta = rho_next / np.where(rho > 0, rho, 1.0)
        zeta = zeta / ratio_next
        beta_shift = beta[None, :] / (ratio_next * ratio_next)
        P = R + _to_device(xp, beta, B) * P
        P_shift = (
            _to_device(xp, zeta, B)[:, None, :] * R[None, :, :]
            + _to_device(xp, beta_shift, B)[:, None, :] * P_shift
        )
        # Lanczos matrix of the base operator from the CG coefficients (host scalars)
        for c_pos, j in enumerate(active_columns):
            if alpha[c_pos] > 0:
                previous = beta_prev[c_pos] / alpha_prev[c_pos] if iteration > 1 else 0.0
                diagonal[j].append(1.0 / alpha[c_pos] + previous)
                offdiagonal[j].append(math.sqrt(max(beta[c_pos], 0.0)) / alpha[c_pos])
        if ritz_every and iteration % ritz_every == 0:
            for j in active_columns:
                ritz_min[j] = _smallest_ritz(diagonal[j], offdiagonal[j]) - base
            if weights is not None:
                y_norms = _combined_norms(space, assemble(X), weights, rhs_weight, B)
        rho, alpha_prev, beta_prev, ratio = rho_next, alpha, beta, ratio_next

        if callback is not None:
            callback(assemble(X))

        # convergence per (shift, column): |zeta| ||r|| <= tol
        estimate = np.abs(zeta) * np.sqrt(np.maximum(rho, 0.0))[None, :]
        tolerance = np.asarray(tol(ritz_min, y_norms))
        for a, i in enumerate(active_shifts):
            for c_pos, j in enumerate(active_columns):
                residual_estimate[i, j] = estimate[a, c_pos]
                if estimate[a, c_pos] <= tolerance[i, j]:
                    converged[i, j] = True
        nonfinite = [c for c in range(len(active_columns)) if not np.isfinite(rho[c])]
        stop_columns = sorted(set(indefinite) | set(nonfinite))
        for c_pos in stop_columns:
            j = active_columns[c_pos]
            for i in active_shifts:
                if not converged[i, j]:
                    status[i, j] = Status.INDEFINITE if c_pos in indefinite else Status.NONFINITE
        done_columns = [
            c_pos
            for c_pos, j in enumerate(active_columns)
            if c_pos in stop_columns or all(converged[i, j] for i in active_shifts)
        ]
        done_shifts = [
            a for a, i in enumerate(active_shifts) if all(converged[i, j] for j in active_columns)
        ]
        if done_columns:
            for c_pos in done_columns:
                j = active_columns[c_pos]
                for a, i in enumerate(active_shifts):
                    results[(i, j)] = X[a, :, c_pos]
            keep = [c for c in range(len(active_columns)) if c not in done_columns]
            active_columns = [active_columns[c] for c in keep]
            if not active_columns:
                break
            X, P_shift = (take_columns(xp, M_, keep, axis=2) for M_ in (X, P_shift))
            R, P = (take_columns(xp, M_, keep, axis=1) for M_ in (R, P))
            rho, alpha_prev, beta_prev = rho[keep], alpha_prev[keep], beta_prev[keep]
            ratio, zeta = ratio[:, keep], zeta[:, keep]
            done_shifts = [
                a
                for a, i in enumerate(active_shifts)
                if all(converged[i, j] for j in active_columns)
            ]
        if done_shifts:
            for a in done_shifts:
                i = active_shifts[a]
                for c_pos, j in enumerate(active_columns):
                    results[(i, j)] = X[a, :, c_pos]
            keep = [a for a in range(len(active_shifts)) if a not in done_shifts]
            active_shifts = [active_shifts[a] for a in keep]
            X, P_shift = (take_columns(xp, M_, keep, axis=0) for M_ in (X, P_shift))
            ratio, zeta = ratio[keep, :], zeta[keep, :]

    for a, i in enumerate(active_shifts):
        for c_pos, j in enumerate(active_columns):
            results[(i, j)] = X[a, :, c_pos]
    for i in range(m):
        for j in range(k):
            if converged[i, j] and status[i, j] is Status.MAX_ITERATIONS:
                status[i, j] = Status.SUCCESS
    x = xp.stack([xp.stack([results[(i, j)] for j in range(k)], axis=1) for i in range(m)])
    residual = residual_estimate
    if verify:
        # true residuals of every system: one block matvec over all shifts and columns
        # (rows, shift, column) layout, so that the m k residual norms are one space.norm call
        flat = xp.reshape(xp.permute_dims(x, (1, 0, 2)), (n, m * k))
        applied = xp.reshape(apply(flat), (n, m, k))
        shifts_device = xp.asarray(shifts, dtype=dtype, device=device(B))[None, :, None]
        true = B[:, None, :] - applied - shifts_device * xp.reshape(flat, (n, m, k))
        n_apply += m * k
        residual = np.reshape(
            to_host(xp, column_norms(space, xp.reshape(true, (n, m * k)))), (m, k)
        )
        base_tol = np.asarray(tol(ritz_min, y_norms))
        for i in range(m):
            for j in range(k):
                if status[i, j] is Status.SUCCESS and not residual[i, j] <= base_tol[i, j]:
                    status[i, j] = Status.STAGNATED
    final_ritz = np.array([_smallest_ritz(diagonal[j], offdiagonal[j]) - base for j in range(k)])
    return MultishiftRun(
        x=x, status=status, residual=residual, n_apply=n_apply, n_iter=n_iter, ritz_min=final_ritz
    )


def _combined_norms(
    space: VectorSpace, X: Any, weights: np.ndarray, rhs_weight: float, B: Any
) -> np.ndarray:
    """Norms per column of ``sum_j weights[j] X[j] + rhs_weight B``."""
    xp = space.xp
    w = xp.asarray(weights, dtype=X.dtype, device=device(X))[:, None, None]
    Y = xp.sum(w * X, axis=0) + rhs_weight * B
    return to_host(xp, column_norms(space, Y))


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
