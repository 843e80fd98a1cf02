"""Stochastic trace and diagonal estimation: matvecs to rtol 1e-2 (track) and the true error.

Each method of ``hvpseries.spectral.trace`` and ``diagonal`` runs to its own stopping test
(``rtol=1e-2``, ``maxiter=2000``) on a low-rank-plus-noise matrix ``U diag(j^-2) U^T +
1e-4 I`` (a decaying spectrum: deflation pays) and on the 2D Laplacian (flat, sparse and
diagonally dominant: plain Hutchinson is hard to beat). The counts are deterministic for
the fixed seed. A method that switches to the ``n`` unit vectors reports their matvecs.
"""

import numpy as np

from .common import laplacian_2d, pick, pin_threads, significant

RTOL = 1e-2
MAXITER = 2000
TRACE_METHODS = ["auto", "hutchinson", "hutch++", "xtrace"]
DIAGONAL_METHODS = ["auto", "hutchinson", "xdiag"]


def low_rank_plus_noise(n, eps=1e-4, seed=0):
    """``U diag(j^-2) U^T + eps I`` with a random orthogonal ``U``."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return (u / np.arange(1, n + 1) ** 2) @ u.T + eps * np.eye(n)


def problems():
    """name -> (matrix, exact diagonal)."""
    dense = low_rank_plus_noise(pick(1000, 3000))
    laplacian = laplacian_2d(pick(60, 200))
    return {
        "low-rank-plus-noise": (dense, np.diag(dense).copy()),
        "laplacian": (laplacian, laplacian.diagonal()),
    }


def _measure(function, methods):
    table = {}
    for name, (matrix, exact) in problems().items():
        for method in methods:
            table[(name, method)] = function(matrix, exact, method)
    return table


def _trace(matrix, exact, method):
    from hvpseries.spectral import trace

    result = trace(matrix, method=method, rtol=RTOL, maxiter=MAXITER)
    truth = float(np.sum(exact))
    return result.n_matvec, abs(result.estimate - truth) / abs(truth)


def _diagonal(matrix, exact, method):
    from hvpseries.spectral import diagonal

    result = diagonal(matrix, method=method, rtol=RTOL, maxiter=MAXITER)
    error = np.linalg.norm(np.asarray(result.estimate) - exact) / np.linalg.norm(exact)
    return result.n_matvec, float(error)


class _MatvecsToTolerance:
    """Matvecs to rtol 1e-2 (track) and the true relative error reached, per method."""

    param_names = ["problem", "method"]
    timeout = 1800

    def track_n_matvec(self, table, problem, method):
        return table[(problem, method)][0]

    track_n_matvec.unit = "matvecs"

    def track_relative_error(self, table, problem, method):
        return significant(table[(problem, method)][1])

    track_relative_error.unit = "relative error"


class TraceMatvecs(_MatvecsToTolerance):
    """Matvecs of trace() to rtol 1e-2 (track), and the true relative error reached."""

    params = [["low-rank-plus-noise", "laplacian"], TRACE_METHODS]

    def setup_cache(self):
        pin_threads(1)
        return _measure(_trace, TRACE_METHODS)


class DiagonalMatvecs(_MatvecsToTolerance):
    """Matvecs of diagonal() to rtol 1e-2 (track), and the true relative error reached."""

    params = [["low-rank-plus-noise", "laplacian"], DIAGONAL_METHODS]

    def setup_cache(self):
        pin_threads(1)
        return _measure(_diagonal, DIAGONAL_METHODS)
