"""The bookkeeping the Krylov linear solvers share: blocks of columns run in lockstep.

All solvers here treat a right-hand side of shape ``(n,)`` as a block with one column and run
the columns of a block ``(n, k)`` in lockstep: one ``matmat`` per iteration for all columns
that are still active, per-column scalars as arrays of shape ``(k,)``. A column that stops
(converged, indefinite, stagnated, ...) is removed from the active block, so no matvec is spent
on it afterwards.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
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
    "BlockSolve",
    "ColumnBook",
    "LinearSystem",
    "StoppedColumns",
    "aggregate_status",
    "column_dots",
    "column_norms",
    "linear_system",
    "make_result",
    "real_part",
    "replace_columns",
    "take_all",
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


def take_all(xp: Any, keep: list[int], *blocks: Any) -> tuple[Any, ...]:
    """Return the entries at ``keep`` along the last axis of each of ``blocks``."""
    return tuple(take_columns(xp, block, keep) for block in blocks)


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


@dataclass
class StoppedColumns:
    """The columns of the active block that stop in one step: positions, statuses, residuals.

    A residual not known yet is NaN until :meth:`BlockSolve.fill_true_residuals` sets it.
    """

    positions: list[int] = field(default_factory=list)
    statuses: list[Status] = field(default_factory=list)
    residuals: list[float] = field(default_factory=list)

    def add(self, position: int, status: Status, residual: float = math.nan) -> None:
        """Stop the column at ``position`` with ``status`` and ``residual``."""
        self.positions.append(position)
        self.statuses.append(status)
        self.residuals.append(residual)

    def __bool__(self) -> bool:
        return bool(self.positions)


class BlockSolve(abc.ABC):
    """The driver a block Krylov linear solver (CG, MINRES) builds on.

    It holds what the columns of a block share: the operator ``apply`` on a block, the active
    iterates ``X`` and right-hand sides ``B``, per-column host arrays (the tolerances ``tol``,
    the true residual norm ``last_true`` of each column's last failed check), the column book
    and the counters. It takes the steps CG and MINRES take alike: the start from ``x0``, the
    verification of a converged-looking column by its true residual, retiring stopped columns
    from the active block and the final result. A subclass implements :meth:`start` and
    :meth:`step`, and shrinks its own per-column state with the positions :meth:`retire` keeps.
    """

    def __init__(self, system: LinearSystem, apply: Callable[[Any], Any], *, callback: Any) -> None:
        self.system = system
        self.xp = system.xp
        self.space = system.operator.vector_space
        self.apply = apply
        self.callback = callback
        self.book = ColumnBook(system.rhs.shape[1])
        self.n_matvec = 0
        self.n_iter = 0
        self.n_checks = 0
        self.B = system.rhs
        self.X: Any = None
        self.in_place = False  # whether the solver updates X in place (set by its start)
        self.tol = system.tol.copy()
        self.last_true = np.full(self.book.k, np.inf)
        self._device_threshold: Any = None

    @property
    def width(self) -> int:
        """The number of active columns."""
        return len(self.book.active)

    @property
    def threshold(self) -> np.ndarray:
        """The host per-column thresholds the recursive residual estimate is compared with."""
        return self.tol

    def device_threshold(self, like: Any) -> Any:
        """:attr:`threshold` on the device and in the dtype of ``like``.

        Cached until the active block shrinks or :meth:`forget_device_threshold` is called.
        """
        if self._device_threshold is None:
            self._device_threshold = self.xp.asarray(
                self.threshold, dtype=like.dtype, device=device(like)
            )
        return self._device_threshold

    def forget_device_threshold(self) -> None:
        """Rebuild :meth:`device_threshold` on its next call (the host thresholds changed)."""
        self._device_threshold = None

    def run(self) -> SolveResult:
        """Start, iterate up to ``maxiter`` times while columns are active, and report."""
        if not self.start():
            return self.result(info={})
        for iteration in range(1, self.system.maxiter + 1):
            self.n_iter = iteration
            if not self.step(iteration):
                break
        if self.book.active:
            self.stop_remaining()
        return self.result(info={"n_residual_checks": self.n_checks})

    @abc.abstractmethod
    def start(self) -> bool:
        """Set up the iteration; return whether any column is left to iterate on."""

    @abc.abstractmethod
    def step(self, iteration: int) -> bool:
        """Take iteration ``iteration``; return whether any column is left to iterate on."""

    def initial_residual(self) -> Any:
        """Set ``X`` to ``x0`` (zero if omitted) and return ``B - A X`` (``B`` without ``x0``)."""
        if self.system.x0 is None:
            self.X = self.xp.zeros_like(self.B)
            return self.B
        self.X = self.system.x0
        residual = self.B - self.apply(self.X)
        self.n_matvec += self.book.k
        return residual

    def initial_residual_norms(self, residual: Any) -> np.ndarray:
        """Return the host column norms of ``residual``, the :meth:`initial_residual`."""
        if self.system.x0 is None:
            return self.system.rhs_norms  # the residual is b, whose norms the problem has
        return to_host(self.xp, column_norms(self.space, residual))

    def solved_at_start(self, norms: np.ndarray, j: int) -> bool:
        """Whether column ``j`` is solved before any iteration: a zero ``b_j`` or a good x0.

        ``norms`` are the :meth:`initial_residual_norms`; with ``x0`` they are true residuals.
        """
        exact = self.system.x0 is not None or self.system.rhs_norms[j] == 0
        return bool(norms[j] <= self.tol[j]) and exact

    def report_progress(self) -> None:
        """Call the callback (if any) with the current iterate in the shape of ``b``."""
        if self.callback is not None:
            iterate = self.book.assemble(self.xp, self.X, self.system.vector)
            if self.in_place:  # a copy: the solver goes on to update its iterate in place
                iterate = self.xp.asarray(iterate, copy=True)
            self.callback(iterate)

    def true_residual(self, positions: list[int] | None = None) -> tuple[Any, np.ndarray]:
        """``B - A X`` on the columns at ``positions`` (the whole block if None), host norms."""
        xp = self.xp
        if positions is None:
            residual = self.B - self.apply(self.X)
            self.n_matvec += self.width
        else:
            residual = take_columns(xp, self.B, positions) - self.apply(
                take_columns(xp, self.X, positions)
            )
            self.n_matvec += len(positions)
        return residual, to_host(xp, column_norms(self.space, residual))

    def check_true_residuals(
        self,
        candidates: list[int],
        stopped: StoppedColumns,
        reason: Callable[[int], Status | None] | None = None,
    ) -> tuple[Any, np.ndarray, list[int]]:
        """Verify the columns at ``candidates``, flagged by the recursion, by true residuals.

        A column stops (added to ``stopped`` with its true residual norm) with
        ``Status.SUCCESS`` if its true residual passes the test, else with ``reason(position)``
        if that is a status, else with ``Status.STAGNATED`` if its true residual norm is above
        0.9 times that of its last failed check. For the other columns that norm is recorded
        as their last check.

        Returns
        -------
        residual, norms : array, numpy.ndarray
            The true residual block of ``candidates`` and its host column norms.
        failed : list of int
            The indices into ``candidates`` of the columns that go on.
        """
        self.n_checks += 1
        residual, norms = self.true_residual(candidates)
        failed = []
        for i, position in enumerate(candidates):
            status = Status.SUCCESS if norms[i] <= self.tol[position] else None
            if status is None and reason is not None:
                status = reason(position)
            if status is None and norms[i] > 0.9 * self.last_true[position]:
                status = Status.STAGNATED
            if status is None:
                self.last_true[position] = norms[i]
                failed.append(i)
            else:
                stopped.add(position, status, float(norms[i]))
        return residual, norms, failed

    def fill_true_residuals(self, stopped: StoppedColumns, positions: list[int]) -> None:
        """Set the residuals of the ``stopped`` columns at ``positions`` to true residuals."""
        _, norms = self.true_residual(positions)
        for position, value in zip(positions, norms, strict=True):
            stopped.residuals[stopped.positions.index(position)] = float(value)

    def retire(self, stopped: StoppedColumns) -> list[int] | None:
        """Record the ``stopped`` columns and drop them from the shared per-column state.

        Returns the positions kept (to shrink the subclass's own state with), or None if no
        column is left (then nothing is shrunk).
        """
        xp = self.xp
        keep = self.book.finish(xp, self.X, stopped.positions, stopped.statuses, stopped.residuals)
        if not self.book.active:
            return None
        self.X, self.B = take_all(xp, keep, self.X, self.B)
        self.tol, self.last_true = self.tol[keep], self.last_true[keep]
        self.forget_device_threshold()
        return keep

    def final_residual_norms(self) -> np.ndarray:
        """Return the host true residual norms of the active block at the end of the budget."""
        return self.true_residual()[1]

    def stop_remaining(self) -> None:
        """Stop the active columns with ``Status.MAX_ITERATIONS`` and their true residuals."""
        positions = list(range(self.width))
        norms = self.final_residual_norms()
        statuses = [Status.MAX_ITERATIONS] * len(positions)
        self.book.finish(self.xp, self.X, positions, statuses, [float(v) for v in norms])
        self.X = self.X[:, :0]

    def result(self, info: dict[str, Any]) -> SolveResult:
        """Return the SolveResult of the run so far, with ``info``."""
        return make_result(
            self.system, self.book, self.X, n_matvec=self.n_matvec, n_iter=self.n_iter, info=info
        )
