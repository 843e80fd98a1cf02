"""A fuzz of the front end's f(A) b functions against exact references on hard spectra.

Each case is a diagonal operator (Lanczos sees only the spectral distribution of ``b``, so a
diagonal matrix with a random ``b`` is as hard as any orthogonal similarity of it, and its
reference ``f(lambda) * b`` is exact) from one of the families that broke stopping tests:
shifted Laplacians with low negative modes, a few weakly excited negative eigenvalues,
clusters, eigenvalues straddling 0 with a small gap, a positive spectrum with one tiny
negative eigenvalue. ``python -m tests.fuzz 5000`` prints the counts reported in the docs.

:func:`method_summary` runs the same families through every method and dtype of every
front-end function (and ``krylov.funm_lanczos`` in its three memory modes with an ``f`` that
declares no kink), on at most 400 eigenvalues; ``python -m tests.fuzz methods 3000`` prints
its counts per call. ``solve`` is checked on its documented test, the residual.
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


@dataclass(frozen=True)
class MethodCall:
    """One method of one function: how to run it, its reference, where it applies."""

    name: str
    run: Callable[[scipy.sparse.spmatrix, np.ndarray, float, float], hs.SolveResult]
    f: Callable[[np.ndarray, float], np.ndarray]
    psd_only: bool = False
    residual: bool = False
    needs_damping: bool = False  # singular at 0 otherwise (Chebyshev refuses it, clearly)


def _plain_abs_inv(d: float) -> Callable[[np.ndarray], np.ndarray]:
    # A plain function: no kinks declared, so funm_lanczos has to find the one at 0.
    return lambda t: 1.0 / (np.abs(t) + d)


def _abs_inv_ref(t: np.ndarray, d: float) -> np.ndarray:
    return 1.0 / (np.abs(t) + d)


def _sign(t: np.ndarray, d: float) -> np.ndarray:
    return np.sign(t)


def krylov_funm(a, b, f, rtol, options) -> hs.SolveResult:
    """``krylov.funm_lanczos`` with the given memory options."""
    return hs.krylov.funm_lanczos(a, b, f, rtol=rtol, **options)


METHOD_CALLS = [
    *(
        MethodCall(
            f"abs_inv[{m}]",
            lambda a, b, r, d, m=m: hs.abs_inv(a, b, damping=d, method=m, rtol=r),
            _abs_inv_ref,
        )
        for m in ("lanczos", "chebyshev", "rational", "series")
    ),
    *(
        MethodCall(
            f"abs_inv[quasi, {m}]",
            lambda a, b, r, d, m=m: hs.abs_inv(
                a, b, damping=d, variant="quasi-damped", method=m, rtol=r
            ),
            lambda t, d: 1.0 / np.sqrt(t * t + d),
        )
        for m in ("lanczos", "series")
    ),
    *(
        MethodCall(
            f"funm_lanczos[{label}]",
            lambda a, b, r, d, options=options: krylov_funm(a, b, _plain_abs_inv(d), r, options),
            _abs_inv_ref,
        )
        for label, options in (
            ("store", {}),
            ("no reorthogonalization", {"reorthogonalize": "none"}),
            ("two-pass", {"memory": "two-pass"}),
        )
    ),
    MethodCall("sign[lanczos]", lambda a, b, r, d: hs.sign(a, b, method="lanczos", rtol=r), _sign),
    MethodCall(
        "funm(abs)[chebyshev]",
        lambda a, b, r, d: hs.funm(a, b, np.abs, method="chebyshev", rtol=r),
        lambda t, d: np.abs(t),
    ),
    *(
        MethodCall(
            f"funm(exp)[{m}]",
            lambda a, b, r, d, m=m: hs.funm(a, b, lambda t: np.exp(-t), method=m, rtol=r),
            lambda t, d: np.exp(-t),
        )
        for m in ("lanczos", "chebyshev")
    ),
    *(
        MethodCall(
            f"solve[{m}]",
            lambda a, b, r, d, m=m: hs.solve(a, b, method=m, rtol=r),
            lambda t, d: 1.0 / t,
            psd_only=m == "cg",
            residual=True,
        )
        for m in ("minres", "cg")
    ),
    *(
        MethodCall(
            f"{name}[{m}]",
            lambda a, b, r, d, m=m, function=function: function(a, b, damping=d, method=m, rtol=r),
            reference,
            psd_only=True,
            needs_damping=name == "inv_sqrt" and m == "chebyshev",
        )
        for name, function, reference in (
            ("inv_sqrt", hs.inv_sqrt, lambda t, d: 1.0 / np.sqrt(t + d)),
            ("sqrt", hs.sqrt, lambda t, d: np.sqrt(t + d)),
        )
        for m in ("lanczos", "chebyshev", "series")
    ),
]


_MOST_EIGENVALUES = 400


def _at_most(
    rng: np.random.Generator, eigenvalues: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    # A random subset of at most 400 eigenvalues, always keeping the ten lowest and the last
    # six (where the families put their weakly excited negative eigenvalues).
    n = eigenvalues.size
    if n <= _MOST_EIGENVALUES:
        return eigenvalues, b
    kept = set(np.argsort(eigenvalues)[:10]) | set(range(n - 6, n))
    rest = np.setdiff1d(np.arange(n), list(kept))
    chosen = rng.choice(rest, _MOST_EIGENVALUES - len(kept), replace=False)
    index = np.sort(np.concatenate([list(kept), chosen]))
    return eigenvalues[index], b[index]


def method_summary(count: int, seed: int = 0) -> tuple[dict[str, Counter], list[tuple]]:
    """Run ``count`` (family, method, dtype) cases; per call, count the outcomes.

    Returns the counts per call name (with ``"SUCCESS, error > rtol"`` and ``"... > 10 rtol"``)
    and every SUCCESS above its tolerance as ``(call, family, dtype, rtol, error)``.
    """
    rng = np.random.default_rng(seed)
    names = list(FAMILIES)
    counts: dict[str, Counter] = {}
    above = []
    for i in range(count):
        family = names[i % len(names)]
        eigenvalues, b = _at_most(rng, *FAMILIES[family](rng))
        call = METHOD_CALLS[int(rng.integers(len(METHOD_CALLS)))]
        if call.psd_only:
            eigenvalues = np.abs(eigenvalues) + 1e-8
        dtype = np.float32 if rng.uniform() < 0.25 else np.float64
        rtols = [1e-3, 1e-4, 1e-5] if dtype == np.float32 else [1e-4, 1e-6, 1e-8, 1e-10]
        rtol = float(rng.choice(rtols))
        scale = float(np.max(np.abs(eigenvalues)))
        d = float(rng.choice([1e-3, 1e-2, 1e-1] if call.needs_damping else [0.0, 1e-3, 1e-2, 1e-1]))
        d *= scale
        if "quasi" in call.name:
            d *= scale
        operator = scipy.sparse.diags(eigenvalues.astype(dtype)).tocsr()
        if call.psd_only:
            operator = hs.aslinearoperator(operator, psd=True)
        result = call.run(operator, b.astype(dtype), rtol, d)
        tally = counts.setdefault(call.name, Counter())
        tally[result.status.name] += 1
        if result.status is not hs.Status.SUCCESS:
            continue
        x = np.asarray(result.x, dtype=np.float64)
        if call.residual:
            error = np.linalg.norm(b - eigenvalues * x) / np.linalg.norm(b)
        else:
            exact = call.f(eigenvalues, d) * b
            error = np.linalg.norm(x - exact) / np.linalg.norm(exact)
        if error > rtol:
            tally["SUCCESS, error > rtol"] += 1
            tally["SUCCESS, error > 10 rtol"] += error > 10 * rtol
            above.append((call.name, family, np.dtype(dtype).name, rtol, float(error)))
    return counts, above


def _print_methods(total: int) -> None:
    counts, above = method_summary(total)
    for name, tally in sorted(counts.items()):
        print(f"{name:34s}", ", ".join(f"{k} {v}" for k, v in sorted(tally.items())))
    for row in above:
        print("  ", row)


if __name__ == "__main__" and sys.argv[1:2] == ["methods"]:
    _print_methods(int(sys.argv[2]) if len(sys.argv) > 2 else 300)
elif __name__ == "__main__":
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    counts, above = summary(total)
    for name, value in sorted(counts.items()):
        print(f"{name:28s} {value:6d}  ({100 * value / total:.2f}%)")
    for case, error, result in above:
        print(
            f"  {case.family:18s} {case.call:28s} rtol={case.rtol:.0e} error={error:.2e} "
            f"n_matvec={result.n_matvec}"
        )
