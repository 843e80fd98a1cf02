"""The bookkeeping the Krylov linear solvers share: blocks of columns run in lockstep.

All solvers here treat a right-hand side of shape ``(n,)`` as a block with one column and run
the columns of a block ``(n, k)`` in lockstep: one ``matmat`` per iteration for all columns
that are still active, per-column scalars as arrays of shape ``(k,)``. A column that stops
(converged, indefinite, stagnated, ...) is removed from the active block, so no matvec is spent
on it afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._core._array_api import array_namespace, device, host_values, is_complex_dtype, same_device
from .._core._checks import check_maxiter
from .._core._result import SolveResult, Status
from .._core._vector_space import VectorSpace
from .._operators._base import LinearOperator
from .._operators._convert import aslinearoperator
from .._solve._problem import Problem
from .._solve._validation import require_not_nonsymmetric

__all__ = [
    "ColumnBook",
    "LinearSystem",
    "aggregate_status",
    "column_dots",
    "column_norms",
    "linear_system",
    "make_result",
    "real_part",
    "replace_columns",
    "take_columns",
    "to_host",
]


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


def linear_system(problem: Problem, *, maxiter: Any, M: Any, method: str) -> LinearSystem:
    """Check the options of a Krylov linear solver and return the system it iterates on.

    Raises
    ------
    TypeError, ValueError
        For a bad ``maxiter``, an ``x0`` that does not fit ``b``, or a preconditioner ``M``
        that does not fit ``A`` or is tagged non-symmetric.
    """
    check_maxiter(maxiter)
    operator, xp = problem.operator, problem.xp
    rhs = problem.block
    start = None
    x0 = problem.x0
    if x0 is not None:
        if array_namespace(x0) is not xp:
            message = "x0 must come from the same array library as b; convert it first"
            raise TypeError(message)
        if not same_device(device(x0), operator.device):
            message = f"x0 is on device {device(x0)} but b on {operator.device}; move x0 there"
            raise ValueError(message)
        if tuple(x0.shape) != tuple(problem.b.shape):
            message = (
                f"x0 must have the shape of b, {tuple(problem.b.shape)}, got {tuple(x0.shape)}"
            )
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
    rhs_norms = problem.b_norms
    tol = np.maximum(problem.rtol * rhs_norms, problem.atol)
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
        vector=problem.vector,
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
) -> SolveResult:
    """Build the SolveResult of a (block) solve from the column book."""
    x = book.assemble(system.xp, X, system.vector)
    statuses = [book.status[j] for j in range(book.k)]
    residuals = np.array([book.residual[j] for j in range(book.k)])
    return SolveResult(
        x=x,
        status=aggregate_status(statuses),
        n_matvec=n_matvec,
        n_iter=n_iter,
        residual_norm=float(residuals[0]) if system.vector else residuals,
        info={**info, "column_status": statuses} if not system.vector else info,
    )
