"""Benchmarks of the series solvers (hvpseries.series).

- ``SeriesMatvecsToTolerance.track_n_matvec``: matvecs (HVPs) that ``abs_inv`` needs to reach a
  relative error estimate ``rtol`` on indefinite spectra with condition number ``kappa``, plain
  and accelerated. Runs are capped at ``MAX_TERMS`` terms; a run that stops there without
  meeting ``rtol`` reports NaN ("not reached"), never the capped count. The true relative error
  of every run is tracked too, and the dense ``eigh`` reference is timed for scale.
- ``SeriesTermOverhead``: time per series term against the two bare sparse matvecs it needs
  (2-D Laplacian, n >= 1e5); the target is an overhead below 10%.
"""

import math
import warnings

import numpy as np

from .common import (
    best_time,
    indefinite_logspaced,
    laplacian_2d,
    laplacian_3d_27_point,
    matrix_from_eigenvalues,
    pick,
    pin_threads,
    require_torch,
    significant,
)

MAX_TERMS = 20_000
ACCELERATIONS = ["plain", "wynn", "levin", "tail"]
RTOLS = [1e-2, 1e-4, 1e-6, 1e-8]


def _acceleration(name):
    return None if name == "plain" else name


class SeriesMatvecsToTolerance:
    params = ([10, 100, 1000], ACCELERATIONS, RTOLS)
    param_names = ["kappa", "acceleration", "rtol"]
    timeout = 600

    def setup_cache(self):
        pin_threads(1)
        from hvpseries.series import abs_inv

        n = pick(120, 300)
        results = {}
        for kappa in self.params[0]:
            eigenvalues = indefinite_logspaced(n, kappa, seed=1)
            matrix = matrix_from_eigenvalues(eigenvalues, seed=2)
            b = np.random.default_rng(3).standard_normal(n)
            q_reference = np.linalg.eigh(matrix)
            reference = q_reference[1] @ ((q_reference[1].T @ b) / np.abs(q_reference[0]))
            for acceleration in ACCELERATIONS:
                for rtol in RTOLS:
                    result = abs_inv(
                        matrix,
                        b,
                        rtol=rtol,
                        maxiter=MAX_TERMS,
                        acceleration=_acceleration(acceleration),
                    )
                    error = np.linalg.norm(result.x - reference) / np.linalg.norm(reference)
                    results[kappa, acceleration, rtol] = (
                        result.n_matvec if result.converged else math.nan,
                        error,
                    )
        return results

    def track_n_matvec(self, results, kappa, acceleration, rtol):
        return results[kappa, acceleration, rtol][0]

    track_n_matvec.unit = "matvecs"

    def track_relative_error(self, results, kappa, acceleration, rtol):
        return significant(results[kappa, acceleration, rtol][1])

    track_relative_error.unit = "relative error"


class DenseEighReference:
    """The dense eigh reference that the matvec counts are measured against, for scale."""

    params = [[120, 300]]
    param_names = ["n"]

    def setup(self, n):
        pin_threads(1)
        self.matrix = matrix_from_eigenvalues(indefinite_logspaced(n, 100, seed=1), seed=2)
        self.b = np.random.default_rng(3).standard_normal(n)

    def time_dense_abs_inv(self, n):
        eigenvalues, vectors = np.linalg.eigh(self.matrix)
        vectors @ ((vectors.T @ self.b) / np.abs(eigenvalues))


TERMS = 200


def _stencil_problem(backend, stencil):
    """A sparse Laplacian with n ~ 1e5 on ``backend``, a right-hand side and a safe scale V."""
    if stencil == "5-point":
        m = pick(320, 448)  # n = m^2 >= 1e5
        laplacian, scale = laplacian_2d(m, shift=4.0), 64.0
    else:
        m = 47  # n = m^3 = 103 823
        laplacian, scale = laplacian_3d_27_point(m), 54.0**2
    b = np.random.default_rng(0).standard_normal(laplacian.shape[0])
    if backend == "numpy":
        return laplacian, b, scale
    import torch

    coo = laplacian.tocoo()
    indices = torch.as_tensor(np.vstack([coo.row, coo.col]), dtype=torch.int64)
    values = torch.as_tensor(coo.data)
    with warnings.catch_warnings():  # torch: "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        matrix = torch.sparse_coo_tensor(indices, values, coo.shape).to_sparse_csr()
    return matrix, torch.as_tensor(b), scale


def _bare_matvec_pairs(matrix, v):
    for _ in range(TERMS - 1):
        matrix @ (matrix @ v)


class SeriesTermOverhead:
    params = (
        ["numpy", "torch"],
        ["plain", "wynn", "tail"],
        ["num_terms", "rtol"],
        ["5-point", "27-point"],
    )
    param_names = ["backend", "acceleration", "mode", "stencil"]
    timeout = 600

    def setup(self, backend, acceleration, mode, stencil):
        if backend == "torch":
            require_torch()
        pin_threads(1)
        import hvpseries as hs

        self.matrix, self.b, scale = _stencil_problem(backend, stencil)
        self.operator = hs.MatrixOperator(self.matrix, symmetric=True)
        self.kwargs = {"scale": scale, "acceleration": _acceleration(acceleration)}
        if mode == "num_terms":
            self.kwargs["num_terms"] = TERMS
        else:  # a tolerance that is never met: the full per-term cost of the stopping test
            self.kwargs.update(rtol=1e-30, maxiter=TERMS)

    def _bare(self):
        _bare_matvec_pairs(self.matrix, self.b)

    def _series(self):
        from hvpseries.series import abs_inv

        abs_inv(self.operator, self.b, **self.kwargs)

    def time_bare_matvec_pairs(self, backend, acceleration, mode, stencil):
        self._bare()

    def time_series(self, backend, acceleration, mode, stencil):
        self._series()

    def track_overhead_percent(self, backend, acceleration, mode, stencil):
        bare, series = best_time(self._bare), best_time(self._series)
        return significant(100.0 * (series - bare) / bare)

    track_overhead_percent.unit = "%"


class SeriesTermFloor:
    """The least vector work a plain term needs, over the bare matvec pair, in percent.

    Per term the series must form ``v = v_prev - p / V`` and ``S += c v`` and read ``||v||``
    (for divergence detection). Done here with the library's own primitives, in place on
    preallocated arrays, beside the same matvecs: NumPy needs two-operand passes (``4``
    read-modify-writes and a dot), torch fuses each update (``add`` with ``alpha``). No solver
    built on these primitives can have a smaller per-term overhead than this.
    """

    params = (["numpy", "torch"], ["5-point", "27-point"])
    param_names = ["backend", "stencil"]
    timeout = 600

    def setup(self, backend, stencil):
        if backend == "torch":
            require_torch()
        pin_threads(1)
        self.matrix, self.b, self.scale = _stencil_problem(backend, stencil)

    def _bare_with_vector_work(self, backend):
        matrix, b, scale = self.matrix, self.b, self.scale
        v, total, scratch = b * 1.0, b * 0.0, b * 0.0
        for _ in range(TERMS - 1):
            product = matrix @ (matrix @ v)
            if backend == "torch":
                import torch

                torch.add(v, product, alpha=-1.0 / scale, out=scratch)
                v, scratch = scratch, v
                total.add_(v, alpha=0.5)
                torch.dot(v, v)
            else:
                np.multiply(product, -1.0 / scale, out=scratch)
                scratch += v
                v, scratch = scratch, v
                np.multiply(v, 0.5, out=product)
                total += product
                v @ v

    def track_floor_percent(self, backend, stencil):
        bare = best_time(lambda: _bare_matvec_pairs(self.matrix, self.b))
        with_work = best_time(lambda: self._bare_with_vector_work(backend))
        return significant(100.0 * (with_work - bare) / bare)

    track_floor_percent.unit = "%"
