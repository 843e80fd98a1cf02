"""Dense f(A) b: a full eigendecomposition, for small explicit matrices.

``xp.linalg.eigh`` on the Hermitian part costs ``O(n^3)`` once and beats every iterative
method below a few thousand unknowns; its error estimate comes from the backward error of
``eigh``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .._core._array_api import epsilon, host_values, is_complex_dtype
from .._core._result import SolveResult, Status
from .._operators._base import LinearOperator
from .._operators._explicit import MatrixOperator
from .._solve._problem import Problem

__all__ = ["DENSE_LIMIT", "is_small_dense", "run_dense"]

# Below this size an explicit dense matrix is diagonalised outright: one O(n^3) eigh beats
# every iterative method there (0.19 s at n = 1000 versus ~0.5 s for Lanczos on a hard
# spectrum, see docs/krylov.rst).
DENSE_LIMIT = 1500


def is_small_dense(operator: LinearOperator) -> bool:
    """Whether a dense eigendecomposition is the fastest route (explicit dense, small n)."""
    return (
        isinstance(operator, MatrixOperator)
        and operator.is_dense
        and operator.shape[0] <= DENSE_LIMIT
    )


def run_dense(problem: Problem, f: Callable[[np.ndarray], np.ndarray]) -> SolveResult:
    """``f(A) b`` from a full eigendecomposition ``A = V diag(l) V^T`` (``xp.linalg.eigh``).

    The error estimate is the first-order effect of the backward error ``E`` of ``eigh``
    (``||E|| <= eps ||A||``) on ``f(A) b = V f(l) c``, ``c = V^H b``, with ``E``'s entries in
    the eigenbasis of the size of a random matrix of norm ``2 eps max |l|``, i.e.
    ``e = 2 eps max |l| / sqrt(n)`` (about eight times those measured for LAPACK). An
    eigenvalue's own share moves it by ``e``; the eigenvectors' share mixes pairs ``i, j`` by
    ``e`` times ``f``'s divided difference ``(f_i - f_j) / (l_i - l_j)`` (capped at
    ``|f_i - f_j|``, a full rotation); plus ``2 eps max |f| ||b||`` for forming ``c`` and
    ``x``. Near a
    singularity of ``f`` (a zero eigenvalue of ``|A|^-1``, of ``sign``) it is large and the
    status is STAGNATED. The result is the raw one, to finish (see ``_solve._problem``).
    """
    operator, b, rtol, atol = problem.operator, problem.b, problem.rtol, problem.atol
    xp = operator.xp
    explicit = isinstance(operator, MatrixOperator)
    matrix = operator.todense()
    # The Hermitian part (the operator was checked to be Hermitian up to rounding)
    is_complex = is_complex_dtype(xp, operator.dtype)
    adjoint = xp.conj(xp.matrix_transpose(matrix)) if is_complex else xp.matrix_transpose(matrix)
    matrix = (matrix + adjoint) / 2
    eigenvalues, vectors = xp.linalg.eigh(matrix)
    # f is a NumPy function: evaluate it on the host, move the n values back once.
    host = host_values(eigenvalues)
    values = np.asarray(f(host), dtype=np.float64)
    scale = xp.asarray(values, dtype=operator.dtype, device=operator.device)
    # V^H b: the conjugate for a complex Hermitian matrix
    projected = xp.matmul(
        xp.conj(xp.matrix_transpose(vectors)) if is_complex else xp.matrix_transpose(vectors), b
    )
    x = xp.matmul(vectors, projected * (scale[:, None] if b.ndim == 2 else scale))
    finite = bool(np.all(np.isfinite(values))) and operator.vector_space.all_finite(x)
    space = operator.vector_space
    b_norms = problem.b_norms
    x_norms = host_values(xp.reshape(space.norm(x), (-1,)))
    eps = epsilon(xp, operator.dtype)
    c = host_values(xp.reshape(xp.abs(projected), (-1,))).reshape(host.size, -1)
    rounding = 2 * eps * float(np.max(np.abs(values), initial=0.0)) * b_norms
    estimate = _eigh_error_estimate(f, host, values, c, eps) + rounding
    if not finite:
        status = Status.NONFINITE
    elif np.all(estimate <= np.maximum(rtol * x_norms, atol)):
        status = Status.SUCCESS
    else:
        status = Status.STAGNATED
    return SolveResult(
        x=x,
        status=status,
        n_matvec=0 if explicit else operator.shape[0],
        n_iter=1,
        error_estimate=float(estimate[0]) if b.ndim == 1 else estimate,
        info={},
    )


def _eigh_error_estimate(
    f: Callable[[np.ndarray], np.ndarray],
    eigenvalues: np.ndarray,
    values: np.ndarray,
    c: np.ndarray,
    eps: float,
) -> np.ndarray:
    """Return the first-order error of ``V f(l) c`` from the backward error of ``eigh``."""
    if not np.all(np.isfinite(values)):
        return np.full(c.shape[1], np.inf)
    n = eigenvalues.size
    # E's entries in the eigenbasis, diagonal (the eigenvalues' errors) and off-diagonal alike
    shift = 2 * eps * float(np.max(np.abs(eigenvalues), initial=0.0)) / math.sqrt(max(n, 1))
    with np.errstate(all="ignore"):
        moved = np.maximum(
            *(
                np.abs(np.asarray(f(eigenvalues + step), dtype=np.float64) - values)
                for step in (shift, -shift)
            )
        )
        moved = np.where(np.isnan(moved), np.inf, moved)  # f singular within the rounding
        jumps = np.abs(values[:, None] - values[None, :])
        gaps = np.abs(eigenvalues[:, None] - eigenvalues[None, :])
        mixing = np.where(gaps > 0, np.minimum(jumps, shift * jumps / gaps), 0.0)
    own = (moved[:, None] * c) ** 2
    pairs = (mixing**2) @ (c**2)
    return np.sqrt(np.sum(own + pairs, axis=0))
