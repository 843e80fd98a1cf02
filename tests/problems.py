"""Test matrices built from prescribed spectra, with dense eigh references for f(A) b."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def random_orthogonal(n: int, seed: int) -> np.ndarray:
    """A Haar-distributed random orthogonal matrix."""
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def matrix_with_eigenvalues(eigenvalues, seed=0):
    """The symmetric matrix Q diag(eigenvalues) Q^T for a random orthogonal Q, and Q."""
    q = random_orthogonal(len(eigenvalues), seed)
    a = (q * np.asarray(eigenvalues)) @ q.T
    return (a + a.T) / 2, q


@dataclass(frozen=True)
class SpectralProblem:
    """A symmetric matrix Q diag(eigenvalues) Q^T and a right-hand side."""

    name: str
    eigenvalues: np.ndarray
    seed: int = 0

    @property
    def n(self) -> int:
        return self.eigenvalues.size

    @property
    def eigenvectors(self) -> np.ndarray:
        return random_orthogonal(self.n, self.seed)

    @property
    def matrix(self) -> np.ndarray:
        q = self.eigenvectors
        a = (q * self.eigenvalues) @ q.T
        return (a + a.T) / 2

    def rhs(self, columns: int | None = None) -> np.ndarray:
        rng = np.random.default_rng(self.seed + 1)
        shape = (self.n,) if columns is None else (self.n, columns)
        return rng.standard_normal(shape)

    def apply_function(self, f: Callable[[np.ndarray], np.ndarray], b: np.ndarray) -> np.ndarray:
        """f(A) b computed densely from the prescribed eigen-decomposition."""
        q = self.eigenvectors
        fb = q.T @ b
        scale = f(self.eigenvalues)
        fb = fb * (scale[:, None] if b.ndim == 2 else scale)
        return q @ fb


def _logspaced(n: int, kappa: float, negative_fraction: float) -> np.ndarray:
    magnitudes = np.logspace(0, np.log10(kappa), n) / kappa
    signs = np.ones(n)
    rng = np.random.default_rng(123)
    signs[rng.permutation(n)[: round(negative_fraction * n)]] = -1
    return magnitudes * signs


PROBLEMS = {
    "spd": SpectralProblem("spd", _logspaced(40, 20.0, 0.0), seed=1),
    "indefinite": SpectralProblem("indefinite", _logspaced(40, 10.0, 0.5), seed=2),
    "clustered": SpectralProblem(
        "clustered", np.concatenate([np.full(15, -0.5), np.full(15, 1.0), [0.8, -0.9]]), seed=3
    ),
    "with_zero": SpectralProblem(
        "with_zero", np.concatenate([[0.0, 0.0], _logspaced(30, 5.0, 0.3)]), seed=4
    ),
}
