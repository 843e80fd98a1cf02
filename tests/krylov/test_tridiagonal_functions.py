"""The O(q m) evaluation of f(T) e_1 for abs_inv's functions against the eigh-based one."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.linalg import eigvalsh_tridiagonal

import hvpseries as hs
from hvpseries import krylov
from hvpseries.krylov import _tridiagonal_functions as tridiagonal
from hvpseries.krylov._funm_lanczos_driver import f_tridiagonal_e1
from hvpseries.krylov._tridiagonal_functions import (
    AbsInvFunction,
    gershgorin_magnitude,
    smallest_magnitude_bound,
)

VARIANTS = ("damped", "quasi-damped")
SIZES = (1, 2, 3, 17, 150, 800, 2000)


def random_tridiagonal(m: int, seed: int, smallest: float | None = None):
    """A random indefinite tridiagonal; with `smallest`, shifted so that min |theta| = smallest."""
    rng = np.random.default_rng(seed)
    alpha = rng.standard_normal(m)
    off = rng.uniform(0.1, 1.0, m - 1) * rng.choice([-1.0, 1.0], m - 1)
    if smallest is not None:
        theta = np.linalg.eigvalsh(dense(alpha, off))
        # move the eigenvalue in the middle of the spectrum to +smallest: it is then the one
        # nearest 0 unless another one sits closer to it than `smallest` (checked below)
        alpha = alpha - theta[m // 2] + smallest
        check = np.min(np.abs(np.linalg.eigvalsh(dense(alpha, off))))
        assert check <= smallest * (1 + 1e-6)
    return alpha, off


def dense(alpha, off):
    return np.diag(alpha) + np.diag(off, 1) + np.diag(off, -1)


def eigh_reference(f, alpha, off):
    return f_tridiagonal_e1(f, alpha, off)[0]


def relative_difference(y, reference):
    return np.linalg.norm(y - reference) / np.linalg.norm(reference)


@pytest.mark.parametrize("m", SIZES)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("damping", [0.0, 1e-3, 0.7])
@pytest.mark.parametrize("smallest", [None, 1e-4])
def test_agrees_with_eigh(m, variant, damping, smallest) -> None:
    alpha, off = random_tridiagonal(m, seed=m, smallest=smallest if m > 2 else None)
    f = AbsInvFunction(damping, variant)
    y = f.tridiagonal_apply(alpha, off, tolerance=1e-10)
    assert y is not None
    assert y.shape == (m,)
    assert y.dtype == np.float64
    # measured worst case over these cases: about 3e-11
    assert relative_difference(y, eigh_reference(f, alpha, off)) <= 1e-10


@pytest.mark.parametrize("tolerance", [1e-3, 1e-6, 1e-9, 1e-12])
@pytest.mark.parametrize("variant", VARIANTS)
def test_accuracy_follows_tolerance(tolerance, variant) -> None:
    alpha, off = random_tridiagonal(300, seed=5, smallest=1e-3)
    f = AbsInvFunction(0.01, variant)
    error = relative_difference(
        f.tridiagonal_apply(alpha, off, tolerance=tolerance), eigh_reference(f, alpha, off)
    )
    assert error <= tolerance
    if tolerance >= 1e-9:
        # and the rule is not needlessly fine (it is asked for tolerance / 10)
        assert error >= 1e-4 * tolerance


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(st.floats(-10.0, 10.0), min_size=1, max_size=40),
    damping=st.floats(1e-3, 10.0),
    variant=st.sampled_from(VARIANTS),
)
# Subnormal entries: eps ||T|| underflows and LAPACK's bisection refused the empty window.
@example(data=[0.0, 0.0, 2.225073858507e-311], damping=1.0, variant="damped")
# A subnormal eigenvalue: the quadrature's lowest node underflowed to 0 (ZeroDivisionError).
@example(data=[5e-324], damping=1.0, variant="damped")
def test_agrees_with_eigh_property(data, damping, variant) -> None:
    m = (len(data) + 1) // 2
    alpha = np.asarray(data[:m])
    off = np.asarray(data[m : 2 * m - 1])
    f = AbsInvFunction(damping, variant)
    y = f.tridiagonal_apply(alpha, off, tolerance=1e-9)
    reference = eigh_reference(f, alpha, off)
    if y is None:  # declined only where the magnitudes of T's eigenvalues underflow when squared
        theta = np.linalg.eigvalsh(np.diag(alpha) + np.diag(off, 1) + np.diag(off, -1))
        assert np.min(np.abs(theta)) < 1e-140
        return
    assert np.linalg.norm(y - reference) <= 1e-9 * np.linalg.norm(reference)


def test_callable_like_the_plain_functions() -> None:
    t = np.array([-3.0, -0.5, 0.0, 0.25, 2.0])
    np.testing.assert_allclose(AbsInvFunction(0.5, "damped")(t), 1 / (np.abs(t) + 0.5))
    np.testing.assert_allclose(AbsInvFunction(0.5, "quasi-damped")(t), 1 / np.sqrt(t * t + 0.5))
    with np.errstate(divide="raise"):  # the singularity gives inf without a warning
        assert AbsInvFunction(0.0, "damped")(np.array([0.0]))[0] == np.inf
    assert "quasi-damped" in repr(AbsInvFunction(0.5, "quasi-damped"))


def test_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="variant"):
        AbsInvFunction(0.0, "undamped")
    with pytest.raises(ValueError, match="damping"):
        AbsInvFunction(-1.0, "damped")


def test_declines_where_not_accurate(monkeypatch) -> None:
    alpha, off = random_tridiagonal(20, seed=1)
    f = AbsInvFunction(0.0, "damped")
    assert f.tridiagonal_apply(alpha, off, tolerance=1e-15) is None  # beyond the quadrature
    assert f.tridiagonal_apply(alpha, off, tolerance=0.0) is None
    assert f.tridiagonal_apply(np.array([1.0, np.nan]), np.array([1.0]), tolerance=1e-8) is None
    assert f.tridiagonal_apply(np.zeros(3), np.zeros(2), tolerance=1e-8) is None
    tiny = AbsInvFunction(1.0, "damped")
    assert tiny.tridiagonal_apply(np.full(2, 1e-200), np.full(1, 1e-200), tolerance=1e-8) is None
    zero = AbsInvFunction(0.25, "quasi-damped").tridiagonal_apply(
        np.zeros(3), np.zeros(2), tolerance=1e-8
    )
    np.testing.assert_array_equal(zero, [2.0, 0.0, 0.0])
    # singular T: f = 1/|t| is infinite there, only the damped functions are defined
    singular = (np.array([1.0, 1.0]), np.array([1.0]))
    assert f.tridiagonal_apply(*singular, tolerance=1e-8) is None
    assert AbsInvFunction(0.0, "quasi-damped").tridiagonal_apply(*singular, tolerance=1e-8) is None
    damped = AbsInvFunction(0.2, "damped").tridiagonal_apply(*singular, tolerance=1e-10)
    reference = eigh_reference(AbsInvFunction(0.2, "damped"), *singular)
    assert relative_difference(damped, reference) <= 1e-10
    monkeypatch.setattr(tridiagonal, "FAST_PATH", False)
    assert f.tridiagonal_apply(alpha, off, tolerance=1e-8) is None


@pytest.mark.parametrize("m", [1, 2, 10, 500])
@pytest.mark.parametrize("smallest", [None, 1e-9, 1e-3])
def test_magnitude_bounds_enclose_the_spectrum(m, smallest) -> None:
    alpha, off = random_tridiagonal(m, seed=3 * m, smallest=smallest if m > 2 else None)
    theta = np.abs(eigvalsh_tridiagonal(alpha, off) if m > 1 else alpha)
    upper = gershgorin_magnitude(alpha, off)
    assert upper >= np.max(theta)
    for start in (None, 1e-12, 1e-4, 1.0, 1e3):  # the guess changes the cost, not the bound
        lower = smallest_magnitude_bound(alpha, off, upper=upper, start=start)
        assert np.min(theta) - 1e-13 * upper <= lower <= np.min(theta)


def test_magnitude_bound_of_a_singular_matrix_is_zero() -> None:
    alpha, off = np.array([1.0, 1.0, 2.0]), np.array([1.0, 0.0])
    assert smallest_magnitude_bound(alpha, off, upper=gershgorin_magnitude(alpha, off)) == 0.0


class Recording(AbsInvFunction):
    """Counts how often the fast path answered."""

    def __init__(self, damping, variant) -> None:
        super().__init__(damping, variant)
        self.answered = 0

    def tridiagonal_apply(self, alpha, off, *, tolerance):
        y = super().tridiagonal_apply(alpha, off, tolerance=tolerance)
        self.answered += y is not None
        return y


def indefinite_diagonal(n: int, kappa: float) -> np.ndarray:
    magnitudes = np.logspace(-np.log10(kappa), 0, n)
    signs = np.where(np.random.default_rng(7).random(n) < 0.4, -1.0, 1.0)
    return magnitudes * signs


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("damping", [0.0, 1e-3])
@pytest.mark.parametrize("rtol", [1e-6, 1e-10])
def test_funm_lanczos_uses_it_and_stays_accurate(variant, damping, rtol) -> None:
    eigenvalues = indefinite_diagonal(600, 300.0)
    b = np.random.default_rng(8).standard_normal(600)
    f = Recording(damping, variant)
    fast = krylov.funm_lanczos(np.diag(eigenvalues), b, f, rtol=rtol)
    plain = krylov.funm_lanczos(np.diag(eigenvalues), b, lambda t: f(t), rtol=rtol)
    assert fast.converged, fast
    assert f.answered > 0
    exact = f(eigenvalues) * b
    assert relative_difference(fast.x, exact) <= 10 * rtol
    assert fast.n_matvec <= 1.1 * plain.n_matvec
    # the same checkpoints here, and the returned vector is evaluated to rounding level: the
    # two paths agree far below rtol
    assert fast.n_iter == plain.n_iter
    assert relative_difference(fast.x, plain.x) <= 1e-11


@pytest.mark.parametrize(("variant", "damping"), [("damped", 0.05), ("quasi-damped", 1e-4)])
def test_abs_inv_through_lanczos_matches_dense(variant, damping, monkeypatch) -> None:
    eigenvalues = indefinite_diagonal(500, 100.0)
    rng = np.random.default_rng(9)
    q, _ = np.linalg.qr(rng.standard_normal((500, 500)))
    A = (q * eigenvalues) @ q.T
    b = rng.standard_normal((500, 2))
    exact = q @ (AbsInvFunction(damping, variant)(eigenvalues)[:, None] * (q.T @ b))
    answered = []
    original = AbsInvFunction.tridiagonal_apply

    def spy(self, alpha, off, *, tolerance):
        y = original(self, alpha, off, tolerance=tolerance)
        answered.append(y is not None)
        return y

    monkeypatch.setattr(AbsInvFunction, "tridiagonal_apply", spy)
    result = hs.abs_inv(A, b, damping=damping, variant=variant, method="lanczos", rtol=1e-9)
    assert result.converged, result
    assert any(answered)  # abs_inv passes the function object on to funm_lanczos
    assert relative_difference(result.x, exact) <= 1e-8
    # the eigh path (switched to) gives the same answer
    monkeypatch.setattr(tridiagonal, "FAST_PATH", False)
    slow = hs.abs_inv(A, b, damping=damping, variant=variant, method="lanczos", rtol=1e-9)
    assert relative_difference(result.x, slow.x) <= 1e-8
