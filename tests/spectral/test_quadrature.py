"""Stochastic Lanczos quadrature: trace_of_function, logdet, spectral_density."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import scipy.sparse as sp

import hvpseries as hs
from hvpseries._core._result import Status
from hvpseries.spectral import (
    SpectralDensity,
    SpectralTraceResult,
    logdet,
    spectral_density,
    trace_of_function,
)


def matrix_from_eigenvalues(eigenvalues: np.ndarray, seed: int = 0) -> np.ndarray:
    """Q diag(eigenvalues) Q^T with a random orthogonal Q (so that probes have variance)."""
    n = eigenvalues.size
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    q = q * np.sign(np.diag(r))
    a = (q * eigenvalues) @ q.T
    return (a + a.T) / 2


def laplacian_2d(m: int, add: float = 0.0) -> sp.csr_matrix:
    one_d = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(m, m))
    eye = sp.identity(m)
    return (sp.kron(one_d, eye) + sp.kron(eye, one_d) + add * sp.identity(m * m)).tocsr()


def laplacian_2d_eigenvalues(m: int, add: float = 0.0) -> np.ndarray:
    one_d = 2.0 - 2.0 * np.cos(np.pi * np.arange(1, m + 1) / (m + 1))
    return np.add.outer(one_d, one_d).ravel() + add


N = 40
SIGNS = np.where(np.random.default_rng(5).random(N) < 0.3, -1.0, 1.0)
# name -> (matrix, its eigenvalues, estimator(matrix, seed), exact value from the eigenvalues)
CALIBRATION = {
    "exp-dense": (
        np.linspace(0.0, 3.0, N),
        lambda a, seed: trace_of_function(a, lambda t: np.exp(-t), rtol=0.05, seed=seed),
        lambda e: np.exp(-e).sum(),
    ),
    "logdet-kappa1e1": (
        np.logspace(-1.0, 0.0, N),
        lambda a, seed: logdet(a, rtol=0.05, seed=seed),
        lambda e: np.log(e).sum(),
    ),
    "logdet-kappa1e4": (
        np.logspace(-4.0, 0.0, N),
        lambda a, seed: logdet(a, rtol=0.05, seed=seed),
        lambda e: np.log(e).sum(),
    ),
    "logabsdet-indefinite": (
        np.linspace(1.0, 5.0, N) * SIGNS,
        lambda a, seed: logdet(a, absolute=True, rtol=0.05, seed=seed),
        lambda e: np.log(np.abs(e)).sum(),
    ),
}


# Observed over seeds 0..99 (n = 40, rtol = 0.05, min_probes = 10, ~10-13 probes a run), the
# number of runs with |error| <= k standard errors + quadrature_error, k = 2 / k = 3:
#   exp-dense 93 / 100, logdet-kappa1e1 95 / 100, logdet-kappa1e4 96 / 100,
#   logabsdet-indefinite 100 / 100 (its quadrature_error is pessimistic), and the shifted
#   Laplacian below 91 / 99. (Normal errors: 95.4 / 99.7.) The runs are deterministic (seeded);
# the floors 85 / 94 fail if the standard error were underestimated by a factor 1.5 (expected
# coverage 82 / 95) or more (a factor 2: 68 / 87), or the quadrature were biased by about SE.
@pytest.mark.parametrize("name", sorted(CALIBRATION))
def test_error_within_reported_standard_errors_over_seeds(name) -> None:
    eigenvalues, estimate, exact_from = CALIBRATION[name]
    a = matrix_from_eigenvalues(eigenvalues, seed=1)
    exact = exact_from(np.linalg.eigvalsh(a))
    within_two = within_three = 0
    for seed in range(100):
        result = estimate(a, seed)
        assert result.status is Status.SUCCESS and result.converged
        error = abs(result.estimate - exact)
        within_two += error <= 2 * result.standard_error + result.quadrature_error
        within_three += error <= 3 * result.standard_error + result.quadrature_error
    assert within_two >= 85, (within_two, within_three)
    assert within_three >= 94, (within_two, within_three)


def test_logdet_shifted_laplacian_calibration() -> None:
    m, add = 8, 0.05
    a = laplacian_2d(m, add)
    exact = np.log(laplacian_2d_eigenvalues(m, add)).sum()
    within_two = within_three = 0
    for seed in range(100):
        result = logdet(a, rtol=0.05, seed=seed)
        error = abs(result.estimate - exact)
        within_two += error <= 2 * result.standard_error + result.quadrature_error
        within_three += error <= 3 * result.standard_error + result.quadrature_error
    assert within_two >= 85 and within_three >= 94, (within_two, within_three)


def test_logdet_at_default_rtol_and_quadrature_accuracy() -> None:
    eigenvalues = np.logspace(-3.0, 1.0, 120)
    a = matrix_from_eigenvalues(eigenvalues, seed=2)
    exact = np.log(eigenvalues).sum()
    result = logdet(a)
    assert isinstance(result, SpectralTraceResult)
    assert result.status is Status.SUCCESS
    assert result.standard_error <= 1e-2 * abs(result.estimate)
    assert abs(result.estimate - exact) <= 3 * result.standard_error + result.quadrature_error
    assert result.n_probes == result.samples.size == result.lanczos_steps.size
    assert result.n_matvec == int(result.lanczos_steps.sum())
    # Each probe's quadrature is accurate: compare with the exact quadratic forms z^T log(A) z.
    fixed = logdet(a, num_probes=3, lanczos_steps=120, seed=4)
    adaptive = logdet(a, num_probes=3, seed=4)
    scale = np.abs(np.log(eigenvalues)).sum()
    # fixed: 120 = n steps, an exact rule; adaptive: |change| <= 1e-3 of the probe's scale
    assert fixed.quadrature_error == 0.0 and adaptive.lanczos_steps.max() < 120
    assert np.all(np.abs(adaptive.samples - fixed.samples) <= 4e-3 * scale)
    assert adaptive.quadrature_error <= 4e-3 * scale


def test_logdet_refuses_a_non_positive_definite_operator() -> None:
    a = matrix_from_eigenvalues(np.linspace(-1.0, 3.0, 30))
    with pytest.raises(ValueError, match=r"not positive definite.*absolute=True"):
        logdet(a)
    with pytest.raises(ValueError, match="psd=False"):
        logdet(hs.aslinearoperator(np.eye(3), symmetric=True, psd=False))
    result = logdet(a, absolute=True, num_probes=3)
    assert np.isfinite(result.estimate)
    with pytest.raises(TypeError, match="absolute"):
        logdet(np.eye(3), absolute=1)


def test_nonfinite_function_values_are_reported() -> None:
    a = matrix_from_eigenvalues(np.linspace(1.0, 2.0, 20))
    result = trace_of_function(a, lambda t: np.where(t > 1.5, np.inf, 0.0))
    assert result.status is Status.NONFINITE and result.estimate == np.inf
    assert result.n_probes == 1 and not result.converged


def test_diagonal_is_exact_and_stops_at_min_probes() -> None:
    # For a diagonal A, z^T f(A) z = tr f(A) for every +-1 probe, and the Krylov space of 3
    # distinct eigenvalues is invariant after 3 steps: no probe or quadrature error at all.
    d = np.repeat([1.0, 2.0, 4.0], 5)
    result = trace_of_function(np.diag(d), np.sqrt, min_probes=4)
    assert result.status is Status.SUCCESS and result.n_probes == 4
    assert result.estimate == pytest.approx(np.sqrt(d).sum(), rel=1e-12)
    assert result.standard_error == 0.0 and result.quadrature_error == 0.0
    assert result.n_matvec == 12


def test_fixed_budget_and_limits() -> None:
    a = matrix_from_eigenvalues(np.linspace(1.0, 2.0, 50))
    fixed = trace_of_function(a, np.log, num_probes=7, lanczos_steps=12)
    assert fixed.status is Status.COMPLETED and not fixed.converged
    assert fixed.n_probes == 7 and fixed.n_matvec == 84
    assert np.all(fixed.lanczos_steps == 12)
    capped = trace_of_function(a, np.exp, rtol=1e-9, max_probes=12)
    assert capped.status is Status.MAX_ITERATIONS and capped.n_probes == 12
    assert "maximum number" in capped.message
    # a quadrature that cannot converge in max_lanczos_steps is not reported as SUCCESS
    hard = matrix_from_eigenvalues(np.logspace(-5.0, 0.0, 60))
    short = logdet(hard, rtol=0.5, max_lanczos_steps=6)
    assert short.status is Status.MAX_ITERATIONS and np.all(short.lanczos_steps <= 6)
    single = trace_of_function(a, np.log, num_probes=1)
    assert single.standard_error == np.inf


def test_deterministic_and_reorthogonalization_variants() -> None:
    a = matrix_from_eigenvalues(np.logspace(-2.0, 0.0, 60))
    first = logdet(a, num_probes=6, seed=3)
    again = logdet(a, num_probes=6, seed=3)
    assert np.array_equal(first.samples, again.samples)
    other = logdet(a, num_probes=6, seed=4)
    assert not np.array_equal(first.samples, other.samples)
    for mode in ("partial", "none"):
        variant = logdet(a, num_probes=6, seed=3, reorthogonalize=mode)
        assert np.allclose(variant.samples, first.samples, rtol=1e-3)


def test_argument_validation() -> None:
    a = np.eye(4)
    with pytest.raises(ValueError, match="symmetric=False"):
        logdet(hs.aslinearoperator(a, symmetric=False))
    with pytest.raises(ValueError, match="symmetric"):
        spectral_density(np.triu(np.ones((4, 4))))
    with pytest.raises(TypeError, match="complex"):
        trace_of_function(a.astype(complex), np.exp)
    with pytest.raises(ValueError, match="square"):
        spectral_density(np.ones((3, 4)))
    with pytest.raises(TypeError, match="callable"):
        trace_of_function(a, 3.0)
    with pytest.raises(ValueError, match="vectorised"):
        trace_of_function(a, lambda t: 1.0)
    with pytest.raises(ValueError, match="rtol"):
        logdet(a, rtol=-1.0)
    with pytest.raises(ValueError, match="num_probes"):
        logdet(a, num_probes=0)
    with pytest.raises(TypeError, match="max_probes"):
        logdet(a, max_probes=2.5)
    with pytest.raises(ValueError, match="min_probes"):
        logdet(a, min_probes=20, max_probes=10)
    with pytest.raises(ValueError, match="quadrature_rtol"):
        logdet(a, quadrature_rtol=float("nan"))
    with pytest.raises(ValueError, match="reorthogonalize"):
        spectral_density(a, reorthogonalize="twice")
    with pytest.raises(ValueError, match="seed"):
        spectral_density(a, seed=-1)
    with pytest.raises(TypeError, match="seed"):
        logdet(a, seed=1.5)
    with pytest.raises(ValueError, match="lanczos_steps"):
        spectral_density(a, lanczos_steps=0)
    with pytest.raises(TypeError):
        logdet(a, 1e-3)  # tolerances are keyword-only
    with pytest.raises(ValueError, match="NaN or infinite"):
        logdet(np.diag([1.0, np.inf, 2.0]))


def test_density_of_two_clusters() -> None:
    low, high = np.linspace(0.0, 1.0, 90), np.linspace(9.0, 10.0, 30)
    a = matrix_from_eigenvalues(np.concatenate([low, high]), seed=3)
    density = spectral_density(a, num_probes=20, lanczos_steps=30)
    assert isinstance(density, SpectralDensity)
    assert density.weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(np.diff(density.nodes) >= 0) and np.all(density.weights >= 0)
    assert density.n_matvec == 20 * 30 and density.nodes.size == 20 * 30
    share, error = density.fraction(5.0, 11.0)
    assert error > 0
    assert abs(share - 0.25) <= 4 * error
    count, count_error = density.count(-1.0, 5.0)
    assert abs(count - 90) <= 4 * count_error
    grid = np.linspace(-2.0, 12.0, 4001)
    integral = np.sum(density.evaluate(grid)) * (grid[1] - grid[0])
    assert integral == pytest.approx(1.0, abs=1e-6)
    wide = density.evaluate(grid, width=0.5)
    assert np.sum(wide) * (grid[1] - grid[0]) == pytest.approx(1.0, abs=1e-4)
    assert density.evaluate(np.array([[0.5, 5.0]])).shape == (1, 2)
    with pytest.raises(ValueError, match="width"):
        density.evaluate(grid, width=0.0)
    with pytest.raises(ValueError, match="width"):
        density.evaluate(grid, width=-1.0)


def test_density_of_the_100x100_laplacian_under_1000_matvecs() -> None:
    m = 100
    counting = hs.CountingOperator(hs.aslinearoperator(laplacian_2d(m), symmetric=True))
    density = spectral_density(counting)
    assert density.n_matvec == counting.n_matvec == 800 < 1000
    assert density.dimension == m * m
    # The spectrum is symmetric about 4: half the eigenvalues lie below it.
    count, error = density.count(-1.0, 4.0)
    assert abs(count - m * m / 2) <= max(4 * error, 0.02 * m * m)
    # Against the exactly smoothed spectrum, at the default width: close in L1.
    eigenvalues = laplacian_2d_eigenvalues(m)
    width = density.default_width()
    grid = np.linspace(-0.5, 8.5, 451)
    exact = SpectralDensity(
        nodes=np.sort(eigenvalues),
        weights=np.full(m * m, 1.0 / (m * m)),
        probes=np.zeros(m * m, dtype=int),
        n_probes=1,
        dimension=m * m,
        n_matvec=0,
        lanczos_steps=80,
    ).evaluate(grid, width=width)
    l1 = np.sum(np.abs(density.evaluate(grid) - exact)) * (grid[1] - grid[0])
    assert l1 < 0.1


def test_density_of_a_small_matrix_and_a_single_point() -> None:
    density = spectral_density(np.diag([1.0, 2.0, 3.0]), num_probes=2)
    assert density.n_matvec == 6 and density.lanczos_steps == 3
    assert np.allclose(np.unique(np.round(density.nodes, 10)), [1.0, 2.0, 3.0])
    point = spectral_density(2.0 * np.eye(5), num_probes=2)
    assert point.nodes.size == 2 and point.default_width() == pytest.approx(2e-3)
    assert "SpectralDensity" in repr(point)


def test_plot_with_agg() -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    density = spectral_density(np.diag(np.linspace(0.0, 1.0, 50)), num_probes=3)
    ax = density.plot(num_points=100)
    assert len(ax.lines) == 1 and ax.lines[0].get_xydata().shape == (100, 2)
    figure, axes = plt.subplots()
    assert density.plot(axes, log=True, width=0.05) is axes
    assert axes.get_yscale() == "log"
    plt.close("all")
    del figure


def test_plot_without_matplotlib(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    density = spectral_density(np.diag([1.0, 2.0]), num_probes=1)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        density.plot()


def test_logdet_on_every_backend(backend) -> None:
    a = matrix_from_eigenvalues(np.logspace(-1.0, 1.0, 30), seed=6)
    reference = logdet(a, num_probes=4, lanczos_steps=20, seed=2)
    result = logdet(backend.asarray(a), num_probes=4, lanczos_steps=20, seed=2)
    tolerance = 1e-10 if backend.dtype_name == "float64" else 1e-3
    assert result.estimate == pytest.approx(reference.estimate, rel=tolerance)
    assert result.n_matvec == reference.n_matvec == 80


def test_logdet_torch_matches_numpy() -> None:
    torch = pytest.importorskip("torch")
    a = matrix_from_eigenvalues(np.logspace(-2.0, 0.0, 50), seed=7)
    reference = logdet(a, rtol=0.05, seed=11)
    result = logdet(torch.as_tensor(a, dtype=torch.float64), rtol=0.05, seed=11)
    assert result.n_probes == reference.n_probes and result.n_matvec == reference.n_matvec
    assert result.estimate == pytest.approx(reference.estimate, rel=1e-10)
    assert np.allclose(result.samples, reference.samples, rtol=1e-10)
