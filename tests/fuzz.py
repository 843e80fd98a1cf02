"""A fuzz of the front end's f(A) b functions against exact references on hard spectra.

Each case is a diagonal operator (Lanczos sees only the spectral distribution of ``b``, so a
diagonal matrix with a random ``b`` is as hard as any orthogonal similarity of it, and its
reference ``f(lambda) * b`` is exact) from one of the families that broke stopping tests:
shifted Laplacians with low negative modes, a few weakly excited negative eigenvalues,
clusters, eigenvalues straddling 0 with a small gap, a positive spectrum with one tiny
negative eigenvalue. ``python -m tests.fuzz 5000`` prints the counts reported in the docs.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse

import hvpseries as hs


@dataclass(frozen=True)
class Case:
    """One fuzz case: a spectrum, a right-hand side, a call and its exact answer."""

    family: str
    call: str
    rtol: float
    eigenvalues: np.ndarray
    b: np.ndarray
    f: Callable[[np.ndarray], np.ndarray]
    run: Callable[[scipy.sparse.spmatrix, np.ndarray], hs.SolveResult]

    def outcome(self) -> tuple[hs.SolveResult, float]:
        """Run the call; return its result and its true relative error."""
        operator = scipy.sparse.diags(self.eigenvalues).tocsr()
        result = self.run(operator, self.b)
        exact = self.f(self.eigenvalues) * self.b
        error = np.linalg.norm(np.asarray(result.x) - exact) / np.linalg.norm(exact)
        return result, float(error)


def _laplacian_shifted(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    side = int(rng.integers(12, 40))
    one_d = 2.0 - 2.0 * np.cos(np.pi * np.arange(1, side + 1) / (side + 1))
    eigenvalues = np.add.outer(one_d, one_d).ravel()
    distinct = np.unique(np.round(eigenvalues, 12))
    after = int(rng.integers(1, 10))
    shift = 0.5 * (distinct[after - 1] + distinct[after])
    return eigenvalues - shift, rng.standard_normal(eigenvalues.size)


def _weak_negatives(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n = int(rng.integers(200, 1500))
    positive = np.logspace(-3, 0, n) * rng.uniform(0.5, 2.0)
    count = int(rng.integers(1, 6))
    negative = -np.logspace(-3, np.log10(0.5), count)[rng.permutation(count)]
    eigenvalues = np.concatenate([positive, negative])
    b = rng.standard_normal(eigenvalues.size)
    b[n:] *= 10.0 ** rng.uniform(-6, -1, count)
    return eigenvalues, b


def _clusters(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    centres = rng.uniform(-1.0, 1.0, int(rng.integers(2, 8)))
    sizes = rng.integers(20, 200, centres.size)
    spread = 10.0 ** rng.uniform(-8, -3)
    eigenvalues = np.concatenate(
        [c + spread * rng.standard_normal(s) for c, s in zip(centres, sizes, strict=True)]
    )
    return eigenvalues, rng.standard_normal(eigenvalues.size)


def _straddling(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n = int(rng.integers(200, 1500))
    gap = 10.0 ** rng.uniform(-4, -1)
    magnitudes = gap + rng.uniform(0.0, 1.0, n) ** 2
    signs = np.where(rng.uniform(size=n) < rng.uniform(0.05, 0.5), -1.0, 1.0)
    return signs * magnitudes, rng.standard_normal(n)


def _one_tiny_negative(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n = int(rng.integers(200, 1500))
    eigenvalues = np.concatenate([np.linspace(1e-2, 1.0, n), [-(10.0 ** rng.uniform(-4, -2))]])
    b = rng.standard_normal(n + 1)
    b[-1] *= 10.0 ** rng.uniform(-4, 0)
    return eigenvalues, b


FAMILIES = {
    "shifted-laplacian": _laplacian_shifted,
    "weak-negatives": _weak_negatives,
    "clusters": _clusters,
    "straddling": _straddling,
    "one-tiny-negative": _one_tiny_negative,
}


def _call(rng: np.random.Generator, scale: float, rtol: float) -> tuple[str, Callable, Callable]:
    kind = rng.choice(["abs_inv", "abs_inv-quasi", "sign", "funm-abs"])
    if kind == "sign":
        return "sign", np.sign, lambda a, b: hs.sign(a, b, rtol=rtol)
    if kind == "funm-abs":
        return "funm(np.abs)", np.abs, lambda a, b: hs.funm(a, b, np.abs, rtol=rtol)
    d = float(rng.choice([0.0, 1e-3, 1e-2, 1e-1])) * scale
    if kind == "abs_inv":
        return (
            f"abs_inv(d={d:.2g})",
            lambda t: 1.0 / (np.abs(t) + d),
            lambda a, b: hs.abs_inv(a, b, damping=d, rtol=rtol),
        )
    d2 = d * scale
    return (
        f"abs_inv(d={d2:.2g}, quasi)",
        lambda t: 1.0 / np.sqrt(t * t + d2),
        lambda a, b: hs.abs_inv(a, b, damping=d2, variant="quasi-damped", rtol=rtol),
    )


def cases(count: int, seed: int = 0) -> list[Case]:
    """``count`` cases drawn with a fixed seed, cycling through the families."""
    rng = np.random.default_rng(seed)
    names = list(FAMILIES)
    drawn = []
    for i in range(count):
        family = names[i % len(names)]
        eigenvalues, b = FAMILIES[family](rng)
        rtol = float(rng.choice([1e-4, 1e-6, 1e-8, 1e-10]))
        scale = float(np.max(np.abs(eigenvalues)))
        call, f, run = _call(rng, scale, rtol)
        drawn.append(Case(family, call, rtol, eigenvalues, b, f, run))
    return drawn


def summary(count: int, seed: int = 0) -> tuple[Counter, list[tuple[Case, float, hs.SolveResult]]]:
    """Run ``count`` cases; count outcomes and collect every SUCCESS above its tolerance."""
    counts: Counter = Counter()
    above = []
    for case in cases(count, seed):
        result, error = case.outcome()
        counts[result.status.name] += 1
        if result.status is hs.Status.SUCCESS and error > case.rtol:
            counts["SUCCESS, error > rtol"] += 1
            counts["SUCCESS, error > 10 rtol"] += error > 10 * case.rtol
            above.append((case, error, result))
    return counts, above


if __name__ == "__main__":
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    counts, above = summary(total)
    for name, value in sorted(counts.items()):
        print(f"{name:28s} {value:6d}  ({100 * value / total:.2f}%)")
    for case, error, result in above:
        print(
            f"  {case.family:18s} {case.call:28s} rtol={case.rtol:.0e} error={error:.2e} "
            f"n_matvec={result.n_matvec}"
        )
