"""Krylov linear solvers and polynomial/rational f(A) b: matvecs to tolerance and overhead.

``track_n_matvec``: matvecs to rtol = 1e-8 on log-spaced spectra with kappa = 1e2 .. 1e4
(deterministic work counts). ``track_overhead_percent``: time of a fixed number of solver
iterations on a sparse 2D Laplacian (n = 102400 in the regular profile) over the time of the
same number of bare SciPy CSR matvecs, minus one, in percent (target < 10%).
"""

import numpy as np

from .common import (
    best_time,
    indefinite_logspaced,
    laplacian_2d,
    laplacian_3d_27_point,
    matrix_from_eigenvalues,
    pick,
    pin_threads,
    significant,
)

RTOL = 1e-8
KAPPAS = [1e2, 1e3, 1e4]


def _problems(n):
    problems = {}
    for kappa in KAPPAS:
        spd = np.logspace(-np.log10(kappa), 0, n)
        indefinite = indefinite_logspaced(n, kappa, seed=1)
        problems[kappa] = {
            "spd": (matrix_from_eigenvalues(spd, seed=2), spd),
            "indefinite": (matrix_from_eigenvalues(indefinite, seed=3), indefinite),
        }
    rhs = np.random.default_rng(4).standard_normal(n)
    return problems, rhs


class KrylovMatvecs:
    """Matvecs to relative tolerance 1e-8 (n = 300 fast, 1000 regular)."""

    params = (["cg", "minres", "cg_multishift", "funm_chebyshev", "abs_inv_rational"], KAPPAS)
    param_names = ["method", "kappa"]
    timeout = 600

    def setup_cache(self):
        return _problems(pick(300, 1000))

    def setup(self, cache, method, kappa):
        pin_threads(1)

    def _run(self, cache, method, kappa):
        from hvpseries import krylov

        problems, b = cache
        A, eigenvalues = problems[kappa]["spd"]
        n = b.size
        if method == "cg":
            return krylov.cg(A, b, rtol=RTOL, maxiter=20 * n)
        if method == "minres":
            A, eigenvalues = problems[kappa]["indefinite"]
            return krylov.minres(A, b, rtol=RTOL, maxiter=20 * n)
        if method == "cg_multishift":
            shifts = list(np.logspace(-np.log10(kappa), 1, 10))
            return krylov.cg_multishift(A, b, [0.0, *shifts], rtol=RTOL, maxiter=20 * n)
        if method == "funm_chebyshev":
            return krylov.funm_chebyshev(
                A,
                b,
                lambda t: 1 / np.sqrt(t),
                interval=(eigenvalues.min(), eigenvalues.max()),
                rtol=RTOL,
            )
        A, eigenvalues = problems[kappa]["indefinite"]
        magnitudes = np.abs(eigenvalues)
        return krylov.abs_inv_rational(
            A, b, interval=(magnitudes.min(), magnitudes.max()), rtol=RTOL, maxiter=20 * n
        )

    def track_n_matvec(self, cache, method, kappa):
        return self._run(cache, method, kappa).n_matvec

    track_n_matvec.unit = "matvecs"

    def track_converged(self, cache, method, kappa):
        return significant(float(self._run(cache, method, kappa).converged))

    track_converged.unit = "converged (1/0)"


class KrylovOverhead:
    """Solver time over bare CSR matvec time, minus one, in percent.

    Two sparse matrices of n ~ 1e5 (regular profile): the 5-point 2D Laplacian (the cheapest
    sparse matvec, ~ the memory traffic of 8 vector passes) and the 27-point 3D Laplacian.
    ``scipy_cg`` is SciPy's ``cg`` on the same matrix and iterations, the peer of ``cg``.
    """

    params = (
        ["cg", "scipy_cg", "minres", "funm_chebyshev", "cg_multishift"],
        ["5-point", "27-point"],
    )
    param_names = ["method", "stencil"]
    timeout = 600

    def setup(self, method, stencil):
        pin_threads(1)
        import hvpseries as hs

        if stencil == "5-point":
            m = pick(100, 320)  # n = 10^4 fast, 102400 regular
            self.matrix, self.interval = laplacian_2d(m), (0.0, 8.0)
        else:
            m = pick(22, 47)  # n = 10648 fast, 103823 regular
            self.matrix, self.interval = laplacian_3d_27_point(m), (0.0, 54.0)
        self.operator = hs.aslinearoperator(self.matrix, symmetric=True)
        self.b = np.random.default_rng(0).standard_normal(self.matrix.shape[0])
        self.iterations = pick(50, 200)

    def _bare(self):
        x = self.b
        for _ in range(self.iterations):
            x = self.matrix @ x
        return x

    def _solve(self, method):
        from hvpseries import krylov

        A, b, k = self.operator, self.b, self.iterations
        if method == "cg":
            return krylov.cg(A, b, rtol=0.0, maxiter=k)
        if method == "scipy_cg":
            import scipy.sparse.linalg as sla

            sla.cg(self.matrix, b, rtol=0.0, atol=0.0, maxiter=k)  # k matvecs from x0 = 0
            return None
        if method == "minres":
            return krylov.minres(A, b, rtol=0.0, maxiter=k)
        if method == "cg_multishift":
            return krylov.cg_multishift(A, b, [0.0, 1.0], rtol=0.0, maxiter=k)
        return krylov.funm_chebyshev(A, b, np.sqrt, interval=self.interval, degree=k)

    def track_overhead_percent(self, method, stencil):
        bare = best_time(self._bare, repeats=3)
        solver = best_time(lambda: self._solve(method), repeats=3)
        result = self._solve(method)
        matvecs = self.iterations if result is None else result.n_matvec
        return significant(100.0 * (solver / (bare * matvecs / self.iterations) - 1.0))

    track_overhead_percent.unit = "percent"

    def time_solve(self, method, stencil):
        self._solve(method)
