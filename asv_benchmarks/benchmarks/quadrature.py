"""Stochastic Lanczos quadrature: matvecs and accuracy of logdet, matvecs of a spectral density.

``hvpseries.spectral`` logdet at rtol 1e-2 on the shifted 2-D Laplacian (SPD, sparse, with the
exact log-determinant from its known eigenvalues), over a few seeds; and the spectral density of
the 100 x 100 Laplacian (n = 10^4) with the defaults (10 probes x 80 Lanczos steps).
"""

import time

import numpy as np

from .common import laplacian_2d, pick, pin_threads, significant

SEEDS = (0, 1, 2)


def laplacian_eigenvalues(m, shift=0.0):
    """The eigenvalues of ``laplacian_2d(m, shift)``."""
    one_d = 2.0 - 2.0 * np.cos(np.pi * np.arange(1, m + 1) / (m + 1))
    return np.add.outer(one_d, one_d).ravel() - shift


def logdet_problems():
    """name -> (SPD sparse matrix, exact log det)."""
    m = pick(50, 100)
    result = {}
    for shift in (-0.5, -0.01):  # A = L + 0.5 I (kappa ~ 18), L + 0.01 I (kappa ~ 800)
        eigenvalues = laplacian_eigenvalues(m, shift)
        result[f"laplacian-plus{-shift:g}"] = (laplacian_2d(m, shift), np.log(eigenvalues).sum())
    return result


class LogdetMatvecs:
    """Matvecs (mean over seeds) and true relative error (worst over seeds) of logdet."""

    param_names = ["problem"]
    params = [["laplacian-plus0.5", "laplacian-plus0.01"]]
    timeout = 1800

    def setup_cache(self):
        import hvpseries as hs
        from hvpseries.spectral import logdet

        pin_threads(1)
        table = {}
        for name, (matrix, exact) in logdet_problems().items():
            matvecs, errors, seconds = [], [], []
            for seed in SEEDS:
                operator = hs.CountingOperator(hs.aslinearoperator(matrix, symmetric=True))
                start = time.perf_counter()
                result = logdet(operator, rtol=1e-2, seed=seed)
                seconds.append(time.perf_counter() - start)
                matvecs.append(operator.n_matvec)
                errors.append(abs(result.estimate - exact) / abs(exact))
            table[name] = (float(np.mean(matvecs)), float(np.max(errors)), float(np.mean(seconds)))
        return table

    def track_n_matvec(self, table, problem):
        return significant(table[problem][0])

    track_n_matvec.unit = "matvecs"

    def track_relative_error(self, table, problem):
        return significant(table[problem][1])

    track_relative_error.unit = "relative error"

    def track_seconds(self, table, problem):
        return significant(table[problem][2])

    track_seconds.unit = "seconds"


class DensityMatvecs:
    """Matvecs and time of the spectral density of the 100 x 100 2-D Laplacian (n = 10^4)."""

    timeout = 600

    def setup(self):
        pin_threads(1)
        self.matrix = laplacian_2d(100)

    def track_n_matvec(self):
        import hvpseries as hs
        from hvpseries.spectral import spectral_density

        operator = hs.CountingOperator(hs.aslinearoperator(self.matrix, symmetric=True))
        spectral_density(operator)
        return operator.n_matvec

    track_n_matvec.unit = "matvecs"

    def time_spectral_density(self):
        from hvpseries.spectral import spectral_density

        spectral_density(self.matrix)
