"""The conjugate gradient method, and the bookkeeping the Krylov linear solvers share.

All solvers here treat a right-hand side of shape ``(n,)`` as a block with one column and run
the columns of a block ``(n, k)`` in lockstep: one ``matmat`` per iteration for all columns
that are still active, per-column scalars as arrays of shape ``(k,)``. A column that stops
(converged, indefinite, stagnated, ...) is removed from the active block, so no matvec is spent
on it afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._core._array_api import array_namespace, device, host_values, is_complex_dtype, same_device
from .._core._checks import check_maxiter, check_tolerances
from .._core._result import SolveResult, Status
from .._core._vector_space import VectorSpace
from .._operators._base import LinearOperator
from .._operators._convert import aslinearoperator
from .._solve._rhs_scaling import scales_right_hand_side
from .._solve._validation import prepare_system, require_not_nonsymmetric

__all__ = ["cg"]

# Status precedence when the columns of a block end differently: the worst one is reported.
_STATUS_ORDER = (
    Status.NONFINITE,
    Status.INDEFINITE,
    Status.BREAKDOWN,
    Status.DIVERGED,
    Status.STAGNATED,
    Status.MAX_ITERATIONS,
    Status.COMPLETED,
    Status.SUCCESS,
)


def aggregate_status(statuses: list[Status]) -> Status:
    """Return the status of a block run: SUCCESS only if every column succeeded."""
    for status in _STATUS_ORDER:
        if status in statuses:
            return status
    return Status.SUCCESS


def to_host(xp: Any, values: Any) -> np.ndarray:
    """Copy a small 1-D array (per-column scalars) to a NumPy float64 array on the host."""
    return host_values(values)


def real_part(xp: Any, values: Any) -> Any:
    """Return the real part of ``values`` (the values themselves for a real dtype)."""
    return xp.real(values) if is_complex_dtype(xp, values.dtype) else values


def column_dots(space: VectorSpace, left: Any, right: Any) -> Any:
    """Return the per-column inner products ``left[:, j]^H right[:, j]`` (real part), ``(k,)``.

    One call of ``space.inner`` for all columns (one reduction for a distributed space).
    """
    return real_part(space.xp, space.inner(left, right))


def column_norms(space: VectorSpace, block: Any) -> Any:
    """Euclidean norms of the columns of ``block`` in ``space``, shape ``(k,)``."""
    return space.norm(block)


def take_columns(xp: Any, block: Any, positions: list[int], axis: int = -1) -> Any:
    """Return the entries along ``axis`` of ``block`` at ``positions``."""
    index = xp.asarray(positions, dtype=xp.int64, device=device(block))
    return xp.take(block, index, axis=axis)


def replace_columns(xp: Any, block: Any, positions: list[int], new: Any) -> Any:
    """Return ``block`` (2-D) with its columns at ``positions`` replaced by those of ``new``.

    Used only on rare events (a failed true-residual check), so an O(n k) copy is fine.
    """
    lookup = {position: i for i, position in enumerate(positions)}
    columns = [new[:, lookup[j]] if j in lookup else block[:, j] for j in range(block.shape[1])]
    return xp.stack(columns, axis=1)


@dataclass
class LinearSystem:
    """A validated ``A x = b`` with the right-hand side as a 2-D block."""

    operator: LinearOperator
    rhs: Any
    x0: Any
    preconditioner: LinearOperator | None
    vector: bool
    xp: Any
    maxiter: int
    tol: Any  # host array (k,): max(rtol * ||b_j||, atol)
    rhs_norms: np.ndarray


def prepare_linear_system(
    A: Any,
    b: Any,
    x0: Any,
    *,
    rtol: Any,
    atol: Any,
    maxiter: Any,
    M: Any,
    callback: Any,
    method: str,
) -> LinearSystem:
    """Validate the common inputs of the Krylov linear solvers (done once, at the API boundary)."""
    check_tolerances(rtol, atol)
    check_maxiter(maxiter)
    if callback is not None and not callable(callback):
        message = f"callback must be callable or None, got {type(callback).__name__}"
        raise TypeError(message)
    operator, b = prepare_system(A, b)
    require_not_nonsymmetric(operator, method)
    xp = operator.xp
    vector = b.ndim == 1
    rhs = xp.reshape(b, (b.shape[0], 1)) if vector else b
    start = None
    if x0 is not None:
        if array_namespace(x0) is not xp:
            message = "x0 must come from the same array library as b; convert it first"
            raise TypeError(message)
        if not same_device(device(x0), operator.device):
            message = f"x0 is on device {device(x0)} but b on {operator.device}; move x0 there"
            raise ValueError(message)
        if tuple(x0.shape) != tuple(b.shape):
            message = f"x0 must have the shape of b, {tuple(b.shape)}, got {tuple(x0.shape)}"
            raise ValueError(message)
        # astype copies, so the caller's x0 is never modified
        start = xp.astype(x0, operator.dtype, copy=True)
        start = xp.reshape(start, rhs.shape)
    preconditioner = None
    if M is not None:
        preconditioner = aslinearoperator(M)
        if preconditioner.shape != operator.shape or preconditioner.xp is not xp:
            message = (
                f"M must be an operator of shape {operator.shape} on the library of A, got "
                f"shape {preconditioner.shape}"
            )
            raise ValueError(message)
        require_not_nonsymmetric(preconditioner, f"{method} (preconditioner M)")
    rhs_norms = to_host(xp, column_norms(operator.vector_space, rhs))
    tol = np.maximum(rtol * rhs_norms, atol)
    if start is not None and np.any(rhs_norms == 0):
        # A x = 0 is solved by x = 0 whatever the guess (as SciPy does): a zero column of b
        # starts, and so ends, at zero instead of chasing a zero residual from x0.
        zero = xp.asarray([bool(v) for v in rhs_norms == 0], device=operator.device)
        start = xp.where(zero[None, :], xp.zeros_like(start), start)
    n = operator.global_shape[0]
    return LinearSystem(
        operator=operator,
        rhs=rhs,
        x0=start,
        preconditioner=preconditioner,
        vector=vector,
        xp=xp,
        maxiter=10 * n if maxiter is None else int(maxiter),
        tol=tol,
        rhs_norms=rhs_norms,
    )


@dataclass
class ColumnBook:
    """Which columns of a block are still iterating, and the results of those that stopped."""

    k: int
    active: list[int] = field(default_factory=list)
    x: dict[int, Any] = field(default_factory=dict)
    status: dict[int, Status] = field(default_factory=dict)
    residual: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.active = list(range(self.k))

    def finish(
        self, xp: Any, X: Any, positions: list[int], statuses: list[Status], residuals: list[float]
    ) -> list[int]:
        """Record the columns at ``positions`` of the active block ``X``; return kept positions."""
        for position, status, residual in zip(positions, statuses, residuals, strict=True):
            column = self.active[position]
            self.x[column] = X[:, position]
            self.status[column] = status
            self.residual[column] = residual
        keep = [p for p in range(len(self.active)) if p not in set(positions)]
        self.active = [self.active[p] for p in keep]
        return keep

    def assemble(self, xp: Any, X: Any, vector: bool) -> Any:
        """Return the full solution (stopped columns and active block ``X``) in the input shape."""
        if not self.x:
            full = X
        else:
            by_column = dict(self.x)
            for position, column in enumerate(self.active):
                by_column[column] = X[:, position]
            full = xp.stack([by_column[j] for j in range(self.k)], axis=1)
        return full[:, 0] if vector else full


def make_result(
    system: LinearSystem,
    book: ColumnBook,
    X: Any,
    *,
    n_matvec: int,
    n_iter: int,
    info: dict[str, Any],
    throw: bool,
) -> SolveResult:
    """Build the SolveResult of a (block) solve from the column book."""
    x = book.assemble(system.xp, X, system.vector)
    statuses = [book.status[j] for j in range(book.k)]
    residuals = np.array([book.residual[j] for j in range(book.k)])
    result = SolveResult(
        x=x,
        status=aggregate_status(statuses),
        n_matvec=n_matvec,
        n_iter=n_iter,
        residual_norm=float(residuals[0]) if system.vector else residuals,
        info={**info, "column_status": statuses} if not system.vector else info,
    )
    return result.raise_for_status() if throw else result


@scales_right_hand_side()
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
    system = prepare_linear_system(
        A, b, x0, rtol=rtol, atol=atol, maxiter=maxiter, M=M, callback=callback, method="cg"
    )
    return _cg(system, callback=callback, throw=throw)


def _cg(system: LinearSystem, *, callback: Any, throw: bool) -> SolveResult:
    xp = system.xp
    operator = system.operator
    space = operator.vector_space
    precondition = system.preconditioner._matmat if system.preconditioner is not None else None
    k = system.rhs.shape[1]
    book = ColumnBook(k)
    n_matvec = 0

    B = system.rhs
    if system.x0 is None:
        X = xp.zeros_like(B)
        R = B
    else:
        X = system.x0
        R = B - operator._matmat(X)
        n_matvec += k
    tol = system.tol.copy()
    rnorm = to_host(xp, column_norms(space, R))
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
        return make_result(system, book, X, n_matvec=n_matvec, n_iter=0, info={}, throw=throw)

    Z = precondition(R) if precondition is not None else R
    rho = column_dots(space, R, Z)
    P = Z
    n_iter = 0
    n_checks = 0
    tol_device = None  # tol on the device, rebuilt whenever the active block shrinks
    for iteration in range(1, system.maxiter + 1):
        n_iter = iteration
        Q = operator._matmat(P)
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
    return make_result(system, book, X, n_matvec=n_matvec, n_iter=n_iter, info=info, throw=throw)


def _true_residual(
    xp: Any, operator: LinearOperator, B: Any, X: Any, positions: list[int]
) -> tuple[Any, np.ndarray]:
    """``B - A X`` on the given columns, and its column norms on the host."""
    residual = take_columns(xp, B, positions) - operator._matmat(take_columns(xp, X, positions))
    return residual, to_host(xp, column_norms(operator.vector_space, residual))
