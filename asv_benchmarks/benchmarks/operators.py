"""Operator application: hvpseries operators against the raw library product, per backend.

``time_*`` time the raw ``matrix @ x`` and the operator's ``A @ x`` separately; the
``track_overhead_percent`` methods time both in the same process, interleaved, and report the
operator's extra time in percent (target: below 5% for dense n >= 2000 and sparse n >= 1e5).
"""

import timeit
import warnings

import numpy as np

import hvpseries as hs

from .common import laplacian_2d, pick, pin_threads, require_torch, significant

DENSE_N = pick(1000, 2000)
SPARSE_GRID = pick(150, 317)  # n = grid^2: 22500 (fast) or 100489 (regular)
BLOCK = 8


def _build(backend, kind):
    pin_threads(1)
    rng = np.random.default_rng(0)
    if kind == "dense":
        matrix = rng.standard_normal((DENSE_N, DENSE_N))
    else:
        matrix = laplacian_2d(SPARSE_GRID, shift=0.3)
    n = matrix.shape[0]
    x, X = rng.standard_normal(n), rng.standard_normal((n, BLOCK))
    if backend == "torch":
        import torch

        x, X = torch.as_tensor(x), torch.as_tensor(X)
        if kind == "dense":
            matrix = torch.as_tensor(matrix)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "sparse CSR is in beta"
                matrix = torch.sparse_csr_tensor(
                    torch.as_tensor(matrix.indptr, dtype=torch.int64),
                    torch.as_tensor(matrix.indices, dtype=torch.int64),
                    torch.as_tensor(matrix.data),
                    size=matrix.shape,
                )
    return matrix, hs.aslinearoperator(matrix, symmetric=True), x, X


def _min_time(function, number):
    return min(timeit.repeat(function, number=number, repeat=7)) / number


class OperatorApplication:
    params = (["numpy", "torch"], ["dense", "sparse"])
    param_names = ["backend", "kind"]

    def setup(self, backend, kind):
        if backend == "torch":
            require_torch()
        self.matrix, self.operator, self.x, self.X = _build(backend, kind)

    def time_raw_matvec(self, backend, kind):
        self.matrix @ self.x

    def time_operator_matvec(self, backend, kind):
        self.operator @ self.x

    def time_raw_matmat(self, backend, kind):
        self.matrix @ self.X

    def time_operator_matmat(self, backend, kind):
        self.operator @ self.X

    def track_matvec_overhead_percent(self, backend, kind):
        return significant(self._overhead(self.x))

    def track_matmat_overhead_percent(self, backend, kind):
        return significant(self._overhead(self.X))

    def _overhead(self, x):
        matrix, operator = self.matrix, self.operator
        number = 20 if matrix.shape[0] < 50_000 else 10
        raw = operator_time = np.inf
        for _ in range(3):  # interleave so drifts in machine load hit both alike
            raw = min(raw, _min_time(lambda: matrix @ x, number))
            operator_time = min(operator_time, _min_time(lambda: operator @ x, number))
        return 100.0 * (operator_time - raw) / raw

    track_matvec_overhead_percent.unit = "%"
    track_matmat_overhead_percent.unit = "%"


class CompositeApplication:
    """A composite (A @ A).shift(s) against the same arithmetic written by hand."""

    params = ["dense", "sparse"]
    param_names = ["kind"]

    def setup(self, kind):
        self.matrix, self.operator, self.x, _ = _build("numpy", kind)
        self.composite = (self.operator @ self.operator).shift(0.5)

    def time_raw(self, kind):
        self.matrix @ (self.matrix @ self.x) + 0.5 * self.x

    def time_composite(self, kind):
        self.composite @ self.x
