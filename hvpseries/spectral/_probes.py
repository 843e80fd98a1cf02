"""Random probe blocks, and the randomized range sketch ``A Omega = Q R`` built from them.

Probes are drawn with NumPy on the host (``array_api_strict`` has no random module) for the
whole global length, one probe after another from one stream, and moved to the operator's
device once per block; a row-sharded space keeps its own rows, so that every process sees
the same probes as a single-process run, and the probes do not depend on how the columns
are split into blocks.

The sketch keeps ``Omega``, ``Y = A Omega``, an orthonormal basis ``Q`` of ``range(Y)`` and
``Z = A Q`` (or ``A^H Q``), grows them a block at a time, and keeps the small Gram matrices
between them on the host. The orthonormalisation uses only ``vector_space.gram`` (Cholesky
QR, twice, after two block Gram-Schmidt passes against the basis so far), so it works for
every vector space, row-sharded ones included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._core._array_api import epsilon, host_values, is_complex_dtype
from .._core._checks import check_choice, check_maxiter, check_positive_int, check_tolerances
from .._core._result import Status
from .._operators._base import LinearOperator
from .._operators._convert import aslinearoperator
from ..krylov._spectrum import _check_seed

__all__ = [
    "DEFAULT_BLOCK",
    "DEFAULT_MAXITER",
    "DISTRIBUTIONS",
    "MIN_SAMPLES",
    "ProbeEstimate",
    "Estimation",
    "ProbeStream",
    "RangeSketch",
    "check_real",
    "check_seed",
    "device_matrix",
    "host_matrix",
    "orthonormalize",
    "prepare",
    "probes",
    "unit_vectors",
]

DISTRIBUTIONS = ("rademacher", "gaussian")

check_seed = _check_seed


@dataclass(frozen=True, eq=False)
class ProbeEstimate:
    """The fields of the probe estimators' results (:class:`TraceResult`, :class:`DiagonalResult`).

    Attributes
    ----------
    estimate, standard_error
        The estimate and its estimated standard error (a float, or an array per entry).
    n_matvec : int
        Operator applications spent.
    status : Status
        Whether the tolerance was met.
    method : str
        The method that produced the estimate.
    """

    estimate: Any
    standard_error: Any
    n_matvec: int
    status: Status
    method: str

    @property
    def converged(self) -> bool:
        """Whether the tolerance was met (``status.converged``)."""
        return self.status.converged


class ProbeStream:
    """A stream of random probe vectors on the operator's backend.

    Parameters
    ----------
    operator : LinearOperator
        The operator whose library, device, dtype and vector space the probes follow.
    distribution : {"rademacher", "gaussian"}
        Entries ``+-1`` with equal probability, or standard normal.
    seed : int
        Seed of ``numpy.random.default_rng``.
    """

    def __init__(self, operator: LinearOperator, *, distribution: str, seed: int) -> None:
        self.operator = operator
        self.distribution = distribution
        self._rng = np.random.default_rng(seed)

    def draw(self, count: int) -> Any:
        """Return the next ``count`` probes as a block of shape ``(n_local, count)``."""
        operator = self.operator
        n = operator.global_shape[1]
        # (count, n) row-major: each probe is a contiguous piece of the stream, so splitting
        # the probes into blocks differently gives the same probes.
        if self.distribution == "rademacher":
            block = self._rng.integers(0, 2, size=(count, n)).astype(np.float64) * 2.0 - 1.0
        else:
            block = self._rng.standard_normal((count, n))
        local = np.ascontiguousarray(operator.vector_space.shard(block.T))
        return operator.xp.asarray(local, dtype=operator.dtype, device=operator.device)


def probes(operator: Any, count: int, *, distribution: str = "rademacher", seed: int = 0) -> Any:
    """Return ``count`` random probe vectors for ``operator`` as a block ``(n, count)``.

    Parameters
    ----------
    operator : LinearOperator or matrix
        Anything :func:`hvpseries.aslinearoperator` accepts; the probes are in its library,
        on its device, in its dtype, and (for a row-sharded operator) hold this process's rows.
    count : int
        Number of probes (columns), at least 1.
    distribution : {"rademacher", "gaussian"}, default "rademacher"
        Rademacher (entries ``+-1``) or standard Gaussian entries.
    seed : int, default 0
        Seed of ``numpy.random.default_rng``; the probes are a deterministic function of it.

    Returns
    -------
    array, shape (n, count)

    Raises
    ------
    TypeError
        If ``count`` or ``seed`` is not an integer.
    ValueError
        If ``count < 1``, ``seed < 0`` or ``distribution`` is unknown.

    Examples
    --------
    >>> import numpy as np
    >>> from hvpseries.spectral._probes import probes
    >>> V = probes(np.eye(4), 3, seed=1)
    >>> V.shape, sorted(set(V.ravel().tolist()))
    ((4, 3), [-1.0, 1.0])
    >>> bool(np.array_equal(probes(np.eye(4), 2, seed=1), V[:, :2]))
    True
    """
    operator = aslinearoperator(operator)
    check_positive_int(count, "count")
    check_choice(distribution, "distribution", DISTRIBUTIONS)
    check_seed(seed)
    return ProbeStream(operator, distribution=distribution, seed=seed).draw(count)


def host_matrix(xp: Any, x: Any) -> np.ndarray:
    """Copy a small backend array (a Gram matrix) to a NumPy float64 array of its shape.

    Small dense work (k x k, k the number of probes) is done on the host on purpose: one
    transfer per block of probes, and LAPACK in float64 whatever the backend's dtype.
    """
    shape = tuple(x.shape)
    if len(shape) <= 1:
        return host_values(x).reshape(shape)
    return host_values(xp.reshape(x, (-1,))).reshape(shape)


def device_matrix(operator: LinearOperator, matrix: np.ndarray) -> Any:
    """Move a small host matrix to the operator's backend, device and dtype."""
    return operator.xp.asarray(
        np.ascontiguousarray(matrix), dtype=operator.dtype, device=operator.device
    )


class RangeSketch:
    """``Omega``, ``Y = A Omega = Q R``, ``Z = A Q`` (or ``A^H Q``), grown a block at a time.

    Parameters
    ----------
    operator : LinearOperator
        A square real operator.
    stream : ProbeStream
        Where the probes ``Omega`` come from.
    adjoint : bool, default False
        Compute ``Z = A^H Q`` instead of ``A Q`` (for the diagonal of a non-symmetric A);
        for an operator tagged symmetric the two are the same and ``A Q`` is used.

    Attributes
    ----------
    omega, y, q, z : arrays, shape (n, k)
        The probes, their images, the orthonormal basis and its image.
    n_matvec : int
        Operator (or adjoint) applications spent: ``2 k``.
    """

    def __init__(
        self, operator: LinearOperator, stream: ProbeStream, *, adjoint: bool = False
    ) -> None:
        self.operator = operator
        self.stream = stream
        self.adjoint = adjoint and operator.symmetric is not True
        xp = operator.xp
        n = operator.shape[0]
        empty = xp.zeros((n, 0), dtype=operator.dtype, device=operator.device)
        self.omega = self.y = self.q = self.z = empty
        self.n_matvec = 0
        self._grams: dict[tuple[str, str], np.ndarray] = {}

    @property
    def size(self) -> int:
        """The number ``k`` of probes (and of basis vectors)."""
        return int(self.omega.shape[1])

    def grow(self, count: int) -> None:
        """Add ``count`` probes: ``2 count`` matvecs."""
        xp = self.operator.xp
        omega = self.stream.draw(count)
        y = self.operator.matmat(omega)
        q = orthonormalize(self.operator, self.q, y, self.stream)
        z = self.operator.rmatmat(q) if self.adjoint else self.operator.matmat(q)
        self.n_matvec += 2 * count
        self.omega = xp.concat([self.omega, omega], axis=1)
        self.y = xp.concat([self.y, y], axis=1)
        self.q = xp.concat([self.q, q], axis=1)
        self.z = xp.concat([self.z, z], axis=1)

    def gram(self, left: str, right: str) -> np.ndarray:
        """Return the host Gram matrix ``left^H right`` of two of the blocks (``k x k``).

        Kept between calls and extended by the new rows and columns only (two reductions).
        """
        space = self.operator.vector_space
        xp = self.operator.xp
        x, y = getattr(self, left), getattr(self, right)
        k = self.size
        old = self._grams.get((left, right), np.zeros((0, 0)))
        done = old.shape[0]
        if done == k:
            return old
        new_columns = host_matrix(xp, space.gram(x, y[:, done:]))  # (k, k - done)
        new_rows = host_matrix(xp, space.gram(x[:, done:], y[:, :done]))  # (k - done, done)
        matrix = np.empty((k, k))
        matrix[:done, :done] = old
        matrix[done:, :done] = new_rows
        matrix[:, done:] = new_columns
        self._grams[(left, right)] = matrix
        return matrix

    def coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        """Return ``R = Q^H Y``, the unit vectors ``s_i / ||s_i||`` of ``S = R^{-H}``, and norms.

        They give the leave-one-out bases of XTrace and XDiag (with the norms ``||s_i||``).
        ``Q (I - s_i s_i^H / ||s_i||^2) Q^H`` projects onto ``range(Y)`` without column
        ``i``, because ``s_i^H R e_j = delta_ij``. Tiny diagonal entries of ``R`` (a
        numerically rank-deficient ``Y``) are raised to ``eps ||R||`` before inverting:
        the basis then spans the range of ``A`` and the leave-one-out projectors keep it.
        """
        r = self.gram("q", "y")
        scale = float(np.linalg.norm(r))
        regularised = r.copy() if scale > 0 else np.eye(r.shape[0])
        floor = (scale if scale > 0 else 1.0) * np.finfo(np.float64).eps * 10
        diagonal = np.diagonal(regularised).copy()
        small = np.abs(diagonal) < floor
        diagonal[small] = np.where(diagonal[small] < 0, -floor, floor)
        np.fill_diagonal(regularised, diagonal)
        s = np.linalg.solve(regularised.T, np.eye(r.shape[0]))
        norms = np.linalg.norm(s, axis=0)
        return r, s / norms, norms


def orthonormalize(operator: LinearOperator, basis: Any, block: Any, stream: ProbeStream) -> Any:
    """Return an orthonormal basis of ``block`` made orthogonal to the orthonormal ``basis``.

    Two block Gram-Schmidt passes against ``basis``, then Cholesky QR twice (through
    ``vector_space.gram``: every space). Where the Gram matrix is too ill-conditioned for
    Cholesky QR (or singular: ``block`` nearly inside ``range(basis)``), the columns are
    orthonormalised one by one, and a column that vanishes is replaced by a random probe.
    """
    xp = operator.xp
    space = operator.vector_space
    initial = host_values(space.norm(block)) if block.shape[1] else np.zeros(0)
    block = _project_out(operator, basis, block)
    eps = epsilon(xp, operator.dtype)
    gram = host_matrix(xp, space.gram(block, block))
    lost = np.sqrt(np.maximum(np.diagonal(gram), 0.0)) <= 100 * eps * np.maximum(initial, 1e-300)
    if not lost.any():
        for _ in range(2):
            factor = _cholesky_factor(gram, eps)
            if factor is None:
                break
            block = xp.matmul(block, device_matrix(operator, np.linalg.inv(factor)))
            gram = host_matrix(xp, space.gram(block, block))
        else:
            if np.linalg.norm(gram - np.eye(gram.shape[0])) <= 1e3 * eps * gram.shape[0]:
                return block
    return _orthonormalize_by_columns(operator, basis, block, stream)


def _project_out(operator: LinearOperator, basis: Any, block: Any) -> Any:
    if basis.shape[1] == 0:
        return block
    space = operator.vector_space
    for _ in range(2):
        block = block - operator.xp.matmul(basis, space.gram(basis, block))
    return block


def _cholesky_factor(gram: np.ndarray, eps: float) -> np.ndarray | None:
    """Return the upper Cholesky factor of ``gram``, or None where Cholesky QR loses accuracy."""
    try:
        lower = np.linalg.cholesky(gram)
    except np.linalg.LinAlgError:
        return None
    diagonal = np.abs(np.diagonal(lower))
    # Cholesky QR loses orthogonality like cond(block)^2 eps: accept cond(block) below about
    # eps^(-1/2) / 100 (7e5 in float64, 30 in float32); the second pass repairs the rest.
    if diagonal.min() <= diagonal.max() * 100 * eps**0.5:
        return None
    return lower.T


def _orthonormalize_by_columns(
    operator: LinearOperator, basis: Any, block: Any, stream: ProbeStream
) -> Any:
    xp = operator.xp
    space = operator.vector_space
    eps = epsilon(xp, operator.dtype)
    columns: list[Any] = []
    for j in range(block.shape[1]):
        column = block[:, j : j + 1]
        for attempt in range(3):
            reference = float(host_values(space.norm(column))[0])
            current = xp.concat([basis, *columns], axis=1) if columns else basis
            column = _project_out(operator, current, column)
            norm = float(host_values(space.norm(column))[0])
            if norm > 100 * eps * reference and norm > 0 and math.isfinite(norm):
                break
            # lost in rounding: a random direction keeps the basis orthonormal (attempt < 3)
            column = stream.draw(1) if attempt < 2 else column
        columns.append(column / norm if norm > 0 else column)
    return xp.concat(columns, axis=1)


def check_real(operator: LinearOperator, name: str) -> None:
    """Raise ``TypeError`` for a complex operator (the estimators are for real ones)."""
    if is_complex_dtype(operator.xp, operator.dtype):
        message = (
            f"{name} supports real operators only, got dtype {operator.dtype}; estimate the "
            "real and imaginary parts separately"
        )
        raise TypeError(message)


# The fewest samples whose spread is trusted for the stopping test (the standard error of a
# standard error from m samples is about 1 / sqrt(2 (m - 1)) of it: 24% at m = 10).
MIN_SAMPLES = 10
# Probes per block when block_size is not given.
DEFAULT_BLOCK = 10
# Matvecs at most when maxiter is not given.
DEFAULT_MAXITER = 1000


@dataclass(frozen=True)
class Estimation:
    """The validated controls shared by :func:`trace` and :func:`diagonal`."""

    operator: LinearOperator
    method: str
    rtol: float
    atol: float
    maxiter: int
    block: int
    stream: ProbeStream

    @property
    def n(self) -> int:
        """The global size of the operator."""
        return self.operator.global_shape[0]

    def verdict(
        self, size: float, error: float, spent: int, samples: int, *, rate: float = 0.5
    ) -> Status | str | None:
        """Decide after a block: a final status, ``"exact"`` (switch to unit vectors), or None.

        ``SUCCESS`` when ``error <= max(rtol * size, atol)`` with at least ``MIN_SAMPLES``
        samples (or the error is 0); ``"exact"`` when the matvecs still needed by the rate
        ``error ~ matvecs^-rate`` (1/2 for Monte Carlo, 1 for the deflated methods on a
        decaying spectrum) are at least ``n`` and ``n`` more fit in ``maxiter``; None to go
        on.
        """
        if not (math.isfinite(size) and (math.isfinite(error) or samples < 2)):
            return Status.NONFINITE
        tolerance = max(self.rtol * size, self.atol)
        if error <= tolerance and (samples >= min(MIN_SAMPLES, self.n) or error == 0):
            return Status.SUCCESS
        if tolerance == 0 or not math.isfinite(error):
            more = math.inf
        else:
            more = spent * ((error / tolerance) ** (1.0 / rate) - 1.0)
        if more >= self.n and spent + self.n <= self.maxiter:
            return "exact"
        return None

    def sketch_growth(self, sketch: RangeSketch) -> tuple[int, str | None]:
        """Return how many probes to add next to an XTrace or XDiag sketch, or 0 and a verdict.

        A block is ``max(block, k / 4)`` probes, two matvecs each, within ``maxiter`` and
        ``n``. When no probe fits, the verdict is ``"exact"`` where the sketch holds all ``n``
        probes and ``n`` more matvecs fit (the unit vectors), else None (out of matvecs).
        """
        k, n = sketch.size, self.n
        count = min(max(self.block, k // 4), (self.maxiter - sketch.n_matvec) // 2, n - k)
        if count >= 1:
            return count, None
        exact = k == n and sketch.n_matvec + n <= self.maxiter
        return 0, "exact" if exact else None

    def exact_first(self, cost_per_probe: int) -> bool:
        """Whether ``n`` unit vectors cost no more than the method's first stopping test.

        That test comes after ``max(block, min(MIN_SAMPLES, n))`` probes of ``cost_per_probe``
        matvecs each (or at ``maxiter``).
        """
        first_cost = cost_per_probe * max(self.block, min(MIN_SAMPLES, self.n))
        return self.n <= min(first_cost, self.maxiter)


def prepare(
    A: Any,
    name: str,
    methods: tuple[str, ...],
    *,
    method: str,
    rtol: Any,
    atol: Any,
    maxiter: Any,
    block_size: Any,
    distribution: Any,
    seed: Any,
) -> Estimation:
    """Validate the arguments of :func:`trace` or :func:`diagonal` (``name``)."""
    operator = aslinearoperator(A)
    if not operator.is_square:
        message = f"{name} needs a square operator, got shape {operator.shape}"
        raise ValueError(message)
    check_real(operator, name)
    check_choice(method, "method", methods)
    check_tolerances(rtol, atol)
    check_maxiter(maxiter)
    check_positive_int(block_size, "block_size", allow_none=True)
    check_choice(distribution, "distribution", DISTRIBUTIONS)
    check_seed(seed)
    n = operator.global_shape[0]
    return Estimation(
        operator=operator,
        method=method,
        rtol=float(rtol),
        atol=float(atol),
        maxiter=DEFAULT_MAXITER if maxiter is None else int(maxiter),
        block=max(1, min(DEFAULT_BLOCK if block_size is None else int(block_size), n)),
        stream=ProbeStream(operator, distribution=distribution, seed=seed),
    )


def unit_vectors(operator: LinearOperator, start: int, count: int) -> Any:
    """Columns ``start, ..., start + count - 1`` of the identity, on the operator's backend."""
    n = operator.global_shape[0]
    block = np.zeros((n, count))
    block[start + np.arange(count), np.arange(count)] = 1.0
    local = np.ascontiguousarray(operator.vector_space.shard(block))
    return operator.xp.asarray(local, dtype=operator.dtype, device=operator.device)
