"""The dense path's SUCCESS on rotated float32 matrices of hard spectra, against float64."""

from __future__ import annotations

import numpy as np
import pytest

import hvpseries as hs


def _spectrum(rng: np.random.Generator, family: str, n: int) -> np.ndarray:
    if family == "straddling":  # a pair of tiny eigenvalues either side of 0
        values = rng.uniform(-1.0, 1.0, n)
        gap = 10.0 ** rng.uniform(-9, -2)
        values[:2] = [-gap, gap * rng.uniform(0.5, 2.0)]
        return values
    if family == "clusters":
        centres = rng.uniform(-1.0, 1.0, 3)
        spread = 10.0 ** rng.uniform(-12, -4)
        return centres[rng.integers(0, 3, n)] + spread * rng.standard_normal(n)
    if family == "one-tiny":
        values = rng.uniform(0.5, 1.0, n) * rng.choice([-1.0, 1.0], n)
        values[0] = 10.0 ** rng.uniform(-7, -2) * rng.choice([-1.0, 1.0])
        return values
    return np.logspace(-rng.uniform(1, 5), 0, n) * rng.choice([-1.0, 1.0], n)


CALLS = {
    "sign": (np.sign, lambda A, b, rtol: hs.sign(A, b, rtol=rtol)),
    "abs_inv": (lambda t: 1 / np.abs(t), lambda A, b, rtol: hs.abs_inv(A, b, rtol=rtol)),
    "abs_inv(d=1e-2)": (
        lambda t: 1 / (np.abs(t) + 1e-2),
        lambda A, b, rtol: hs.abs_inv(A, b, damping=1e-2, rtol=rtol),
    ),
}


@pytest.mark.parametrize("seed", range(3))
def test_dense_success_holds_the_tolerance(seed) -> None:
    rng = np.random.default_rng(seed)
    successes = 0
    for case in range(40):
        family = ("straddling", "clusters", "one-tiny", "log-spaced")[case % 4]
        n = int(rng.integers(5, 200))
        q, _ = np.linalg.qr(rng.standard_normal((n, n)))
        A = ((q * _spectrum(rng, family, n)) @ q.T).astype(np.float32)
        b = rng.standard_normal(n).astype(np.float32)
        values, vectors = np.linalg.eigh(A.astype(np.float64))  # the reference, of A as given
        name = list(CALLS)[case % len(CALLS)]
        f, call = CALLS[name]
        rtol = float(10.0 ** rng.uniform(-6, -2))
        result = call(A, b, rtol)
        exact = vectors @ (f(values) * (vectors.T @ b.astype(np.float64)))
        error = np.linalg.norm(result.x.astype(np.float64) - exact) / np.linalg.norm(exact)
        assert result.info["method"] == "dense"
        if result.status is hs.Status.SUCCESS:
            successes += 1
            assert error <= rtol, (family, name, n, rtol, error)
            assert error <= result.relative_error_estimate, (family, name, n, error)
    assert successes >= 20  # the estimate must not refuse everything
