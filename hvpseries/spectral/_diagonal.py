"""Stochastic diagonal estimation from matvecs: Bekas-Kokiopoulou-Saad and XDiag, to a tolerance."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .._core._array_api import as_python_float
from .._core._result import Status
from ._probes import (
    Estimation,
    ProbeEstimate,
    RangeSketch,
    device_matrix,
    prepare,
    unit_vectors,
)

__all__ = ["DiagonalResult", "diagonal"]

METHODS = ("auto", "hutchinson", "xdiag")


@dataclass(frozen=True, eq=False)
class DiagonalResult(ProbeEstimate):
    """Frozen result of :func:`diagonal`.

    Attributes
    ----------
    estimate : array, shape (n,)
        The estimate of ``diag(A)``, in the operator's library, device and dtype (this
        process's rows for a row-sharded operator).
    standard_error : array, shape (n,)
        The estimated standard error of each entry (zeros for the exact diagonal).
    n_matvec : int
        Operator applications spent (adjoint applications of XDiag included).
    status : Status
        ``SUCCESS`` when ``norm(standard_error) <= max(rtol norm(estimate), atol)``,
        ``MAX_ITERATIONS`` when ``maxiter`` matvecs did not get there, ``NONFINITE`` for NaN
        or infinite values.
    method : str
        ``"hutchinson"``, ``"xdiag"``, or ``"exact"`` when the ``n`` unit vectors were used.
    """


def diagonal(
    A: Any,
    *,
    method: str = "auto",
    rtol: float = 1e-2,
    atol: float = 0.0,
    maxiter: int | None = None,
    block_size: int | None = None,
    distribution: str = "rademacher",
    seed: int = 0,
) -> DiagonalResult:
    r"""Estimate ``diag(A)`` from products with random probe vectors, to a tolerance.

    Parameters
    ----------
    A : LinearOperator or matrix
        A square real operator (anything :func:`hvpseries.aslinearoperator` accepts).
        ``"hutchinson"`` needs only ``A v``; ``"xdiag"`` also applies the adjoint ``A^T``
        unless ``A`` is tagged symmetric (an operator without an adjoint then raises the
        operator's ``TypeError``; tag it ``symmetric=True`` if it is).
    method : {"auto", "hutchinson", "xdiag"}, default "auto"
        The estimator (see Notes); ``"auto"`` is ``"xdiag"``.
    rtol, atol : float, default 1e-2 and 0.0
        Stop when ``norm(standard_error) <= max(rtol * norm(estimate), atol)`` (Euclidean
        norms over all entries).
    maxiter : int, optional
        The most matvecs to spend (default 1000).
    block_size : int, optional
        Probes per block (default 10, at most ``n``), applied with ``matmat``.
    distribution : {"rademacher", "gaussian"}, default "rademacher"
        Entries of the probes: ``+-1`` or normal.
    seed : int, default 0
        Seed of the probes; the result is a deterministic function of it.

    Returns
    -------
    DiagonalResult

    Raises
    ------
    TypeError
        For a complex operator, or an argument of the wrong type.
    ValueError
        For a non-square operator, an unknown ``method`` or ``distribution``, a negative
        tolerance, ``maxiter < 1`` or ``block_size < 1``.

    Notes
    -----
    *Hutchinson* is the estimator of Bekas, Kokiopoulou and Saad [1]_,
    ``D = sum_j v_j * (A v_j) / sum_j v_j * v_j`` (entry-wise products; the denominator is
    ``m`` for Rademacher probes). Entry ``r`` has the variance ``sum_{c != r} A_rc^2 / m``
    (Rademacher); its standard error is that of a ratio estimator,
    ``sqrt(m / (m - 1) sum_j (x_jr - D_r d_jr)^2) / sum_j d_jr`` with ``x_j = v_j * A v_j``
    and ``d_j = v_j * v_j``. One matvec per probe, no storage beyond five n-vectors.

    *XDiag* [2]_ deflates as XTrace does: with ``Y = A Omega = Q R`` and ``Q_i`` the basis of
    ``Y`` without column ``i``, ``d_i = diag(Q_i Q_i^T A) + omega_i * ((I - Q_i Q_i^T) A
    omega_i)`` for each probe, and the estimate is their mean (``2 k`` matvecs). As
    ``(I - Q_i Q_i^T) y_i = Q s_i / ||s_i||^2`` (``s_i`` the ``i``-th column of ``R^{-T}``),
    ``d_i = diag(Q Q^T A) - (Q u_i) * (A^T Q u_i) + omega_i * (Q u_i) / ||s_i||`` with
    ``u_i = s_i / ||s_i||``. The standard error of each entry is the spread of the ``d_i``
    over ``sqrt(k)``; it is the paper's estimate and, like it, somewhat optimistic (the
    ``d_i`` are positively correlated; see the tests for the measured coverage). Probes are
    added in blocks of ``max(block_size, k / 4)``.

    XDiag wins where ``A`` is close to low rank (a decaying spectrum); Hutchinson wins on
    sparse or diagonally dominant matrices, where its variance is already small. ``"auto"`` is
    XDiag, a large gain on low-rank spectra against a loss of about 2 on the 2D Laplacian
    (measurements: the user guide, "Spectral estimates"). XDiag keeps four ``n x k`` blocks
    and costs ``O(n k^2)`` per block of probes.

    The test is checked after each block once there are at least 10 probes. When the rate
    ``matvecs^-1/2`` (Hutchinson; ``matvecs^-1`` for XDiag) predicts at least ``n`` more matvecs
    and ``n`` more fit in ``maxiter``, or from the start when ``n`` is at most the cost of the
    first test, the diagonal is read off the ``n`` unit vectors instead (``method="exact"``,
    standard errors 0).

    References
    ----------
    .. [1] C. Bekas, E. Kokiopoulou and Y. Saad, "An estimator for the diagonal of a matrix",
       Appl. Numer. Math. 57 (2007), 1214-1229.
    .. [2] E. N. Epperly, J. A. Tropp and R. J. Webber, "XTrace: Making the most of every
       sample in stochastic trace estimation", SIAM J. Matrix Anal. Appl. 45 (2024), 1-23.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> from hvpseries.spectral import diagonal
    >>> n = 2000
    >>> A = sp.diags([-1.0, 2.0 + np.arange(n) / n, -1.0], [-1, 0, 1], shape=(n, n))
    >>> result = diagonal(A, method="hutchinson", rtol=0.05)
    >>> result.status.name, result.method, result.n_matvec
    ('SUCCESS', 'hutchinson', 130)
    >>> error = np.linalg.norm(result.estimate - A.diagonal()) / np.linalg.norm(A.diagonal())
    >>> bool(error < 0.1)
    True
    """
    settings = prepare(
        A,
        "diagonal",
        METHODS,
        method=method,
        rtol=rtol,
        atol=atol,
        maxiter=maxiter,
        block_size=block_size,
        distribution=distribution,
        seed=seed,
    )
    chosen = "xdiag" if method == "auto" else method
    if chosen == "xdiag" and settings.maxiter < 2:
        chosen = "hutchinson"
    if settings.n == 0 or settings.exact_first(2 if chosen == "xdiag" else 1):
        return _exact(settings, 0)
    return _hutchinson(settings) if chosen == "hutchinson" else _xdiag(settings)


def _zeros(settings: Estimation) -> Any:
    operator = settings.operator
    return operator.xp.zeros((operator.shape[0],), dtype=operator.dtype, device=operator.device)


def _exact(settings: Estimation, spent: int) -> DiagonalResult:
    """Row ``r`` of ``sum_j e_j * (A e_j)`` is ``A_rr``: ``n`` matvecs, a block at a time."""
    operator = settings.operator
    xp = operator.xp
    n, total = settings.n, _zeros(settings)
    for start in range(0, n, settings.block):
        count = min(settings.block, n - start)
        unit = unit_vectors(operator, start, count)
        total = total + xp.sum(unit * operator.matmat(unit), axis=1)
    finite = n == 0 or operator.vector_space.all_finite(total)
    status = Status.SUCCESS if finite else Status.NONFINITE
    return DiagonalResult(total, _zeros(settings), spent + n, status, "exact")


def _finish(
    settings: Estimation, verdict: Any, estimate: Any, error: Any, spent: int, method: str
) -> DiagonalResult:
    if verdict == "exact":
        return _exact(settings, spent)
    status = Status.MAX_ITERATIONS if verdict is None else verdict
    return DiagonalResult(estimate, error, spent, status, method)


def _sizes(settings: Estimation, estimate: Any, error: Any) -> tuple[float, float]:
    space = settings.operator.vector_space
    return as_python_float(space.norm(estimate)), as_python_float(space.norm(error))


def _hutchinson(settings: Estimation) -> DiagonalResult:
    operator, stream = settings.operator, settings.stream
    xp = operator.xp
    # Sums over the probes of x' = x - D0 d, x' d, x'^2, d, d^2, with x = v * A v, d = v * v
    # and D0 the first block's estimate: the shift keeps the spread free of cancellation.
    shift = sum_x = sum_xd = sum_xx = sum_d = sum_dd = None
    m = 0
    while True:
        count = min(settings.block, settings.maxiter - m)
        probes = stream.draw(count)
        x = probes * operator.matmat(probes)
        d = probes * probes
        if shift is None:
            shift = xp.sum(x, axis=1) / xp.sum(d, axis=1)
            sum_x = sum_xd = sum_xx = sum_d = sum_dd = _zeros(settings)
        x = x - shift[:, None] * d
        sum_x = sum_x + xp.sum(x, axis=1)
        sum_xd = sum_xd + xp.sum(x * d, axis=1)
        sum_xx = sum_xx + xp.sum(x * x, axis=1)
        sum_d = sum_d + xp.sum(d, axis=1)
        sum_dd = sum_dd + xp.sum(d * d, axis=1)
        m += count
        offset = sum_x / sum_d
        estimate = shift + offset
        if m > 1:
            spread = sum_xx - 2 * offset * sum_xd + offset * offset * sum_dd
            error = xp.sqrt(xp.clip(spread, 0.0, None) * (m / (m - 1))) / sum_d
            size, norm = _sizes(settings, estimate, error)
        else:
            error = xp.full_like(estimate, math.inf)
            size, norm = _sizes(settings, estimate, _zeros(settings))
            norm = math.inf
        verdict = settings.verdict(size, norm, m, m)
        if verdict is not None or m >= settings.maxiter:
            return _finish(settings, verdict, estimate, error, m, "hutchinson")


def _xdiag(settings: Estimation) -> DiagonalResult:
    operator = settings.operator
    xp = operator.xp
    sketch = RangeSketch(operator, settings.stream, adjoint=True)
    estimate = error = xp.full_like(_zeros(settings), math.nan)
    while True:
        count, verdict = settings.sketch_growth(sketch)
        if count < 1:
            return _finish(settings, verdict, estimate, error, sketch.n_matvec, "xdiag")
        sketch.grow(count)
        k = sketch.size
        _, u, norms = sketch.coordinates()
        qu = xp.matmul(sketch.q, device_matrix(operator, u))
        zu = xp.matmul(sketch.z, device_matrix(operator, u))
        base = xp.sum(sketch.q * sketch.z, axis=1)
        # d_i minus diag(Q Q^T A), one column per probe
        samples = sketch.omega * qu / device_matrix(operator, norms[None, :]) - qu * zu
        estimate = base + xp.mean(samples, axis=1)
        if k > 1:
            error = xp.std(samples, axis=1, correction=1) / math.sqrt(k)
            size, norm = _sizes(settings, estimate, error)
        else:
            error = xp.full_like(estimate, math.inf)
            size, norm = _sizes(settings, estimate, _zeros(settings))[0], math.inf
        verdict = settings.verdict(size, norm, sketch.n_matvec, k, rate=1.0)
        if verdict is not None:
            return _finish(settings, verdict, estimate, error, sketch.n_matvec, "xdiag")
