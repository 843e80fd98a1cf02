"""Extreme eigenpairs: matvecs to rtol 1e-8 of ``hvpseries.krylov.eigsh`` and SciPy's ARPACK.

Both start from the same vector and use the default basis size (``ncv = max(2k + 1, 20)``)
and the same tolerance. Both counts are Lanczos steps only: hvpseries forms its residuals
``A V - V Lambda`` from the stored products ``A Q`` of its basis, without a matvec.
"""

import time

import numpy as np

from .common import matrix_from_eigenvalues, pick, pin_threads

RTOL = 1e-8
KS = [1, 6, 20]
WHICH = ["LA", "SA", "BE"]


def _second_difference(m):
    import scipy.sparse as sp

    return sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(m, m))


def problems():
    """name -> a symmetric matrix (sparse or dense)."""
    import scipy.sparse as sp

    n = pick(1000, 10000)
    centers = np.linspace(1.0, 10.0, n // 10)
    clustered = np.sort((centers[:, None] + 0.01 * np.arange(10)).ravel())
    m = pick(30, 100)
    # an m x (m + 1) grid: distinct eigenvalues (a square one has double ones)
    laplacian = (
        sp.kron(_second_difference(m), sp.identity(m + 1))
        + sp.kron(sp.identity(m), _second_difference(m + 1))
    ).tocsr()
    dense_n = pick(400, 2000)
    semicircle = np.sort(np.random.default_rng(0).standard_normal(dense_n))
    return {
        "clustered-diagonal": sp.diags(clustered).tocsr(),
        "indefinite-diagonal": sp.diags(5.0 * np.linspace(-1.0, 1.0, n) ** 3).tocsr(),
        "laplacian-2d": laplacian,
        "dense": matrix_from_eigenvalues(semicircle, seed=0),
    }


def _start(n):
    return np.random.default_rng(0).standard_normal(n)


def run_hvpseries(matrix, k, which):
    """Return (matvecs, seconds) of hvpseries' eigsh."""
    from hvpseries import krylov

    start = time.perf_counter()
    result = krylov.eigsh(matrix, k, which, rtol=RTOL, v0=_start(matrix.shape[0]))
    return result.n_matvec, time.perf_counter() - start


def run_scipy(matrix, k, which):
    """Return (matvecs, seconds) of scipy.sparse.linalg.eigsh, counted by a wrapper."""
    import scipy.sparse.linalg as sla

    count = 0

    def matvec(x):
        nonlocal count
        count += 1 if x.ndim == 1 else x.shape[1]
        return matrix @ x

    operator = sla.LinearOperator(matrix.shape, matvec=matvec, dtype=np.float64)
    start = time.perf_counter()
    sla.eigsh(operator, k=k, which=which, tol=RTOL, v0=_start(matrix.shape[0]))
    return count, time.perf_counter() - start


class EigshMatvecs:
    """Matvecs to rtol 1e-8: hvpseries against SciPy (ARPACK), same start vector."""

    param_names = ["problem", "which", "k"]
    params = [
        ["clustered-diagonal", "indefinite-diagonal", "laplacian-2d", "dense"],
        WHICH,
        KS,
    ]
    timeout = 1800

    def setup_cache(self):
        pin_threads(1)
        table = {}
        for name, matrix in problems().items():
            for which in WHICH:
                for k in KS:
                    if which == "BE" and k == 1:
                        continue  # ARPACK refuses BE with k = 1
                    table[(name, which, k)] = (
                        run_hvpseries(matrix, k, which),
                        run_scipy(matrix, k, which),
                    )
        return table

    def setup(self, table, problem, which, k):
        if (problem, which, k) not in table:
            raise NotImplementedError("ARPACK refuses which='BE' with k = 1")

    def track_n_matvec_hvpseries(self, table, problem, which, k):
        return table[(problem, which, k)][0][0]

    track_n_matvec_hvpseries.unit = "matvecs"

    def track_n_matvec_scipy(self, table, problem, which, k):
        return table[(problem, which, k)][1][0]

    track_n_matvec_scipy.unit = "matvecs"


class EigshTime:
    """Wall-clock time of hvpseries' eigsh and SciPy's on a 2-D Laplacian."""

    param_names = ["solver", "which", "k"]
    params = [["hvpseries", "scipy"], ["LA", "SA"], [6, 20]]
    timeout = 600

    def setup(self, solver, which, k):
        pin_threads(1)
        self.matrix = problems()["laplacian-2d"]

    def time_eigsh(self, solver, which, k):
        if solver == "hvpseries":
            run_hvpseries(self.matrix, k, which)
        else:
            run_scipy(self.matrix, k, which)
