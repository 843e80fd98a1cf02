"""Stochastic trace estimation: exact answers, calibration of the standard errors, variance."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import hvpseries as hs
from hvpseries.spectral import TraceResult, trace
from hvpseries.spectral._probes import probes
from hvpseries.spectral._trace import RangeSketch, xtrace_jackknife, xtrace_samples

METHODS = ("hutchinson", "hutch++", "xtrace")


def low_rank_plus_noise(n, eps=1e-3, power=2, seed=0):
    """``U diag(j^-power) U^T + eps I``: a decaying spectrum, trace known."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((n, n)))
    spectrum = 1.0 / np.arange(1, n + 1) ** power
    return (u * spectrum) @ u.T + eps * np.eye(n)


def dense_symmetric(n, seed=5):
    rng = np.random.default_rng(seed)
    b = rng.standard_normal((n, n))
    return (b + b.T) / 2 + 3.0 * np.eye(n)


def laplacian_2d(m):
    one_d = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(m, m))
    eye = sp.identity(m)
    return (sp.kron(one_d, eye) + sp.kron(eye, one_d)).tocsr()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", ["dense", "laplacian", "low-rank"])
def test_estimate_within_tolerance_of_known_trace(name, method):
    matrix = {
        "dense": lambda: dense_symmetric(400),
        "laplacian": lambda: laplacian_2d(30),
        "low-rank": lambda: low_rank_plus_noise(400),
    }[name]()
    exact = float(matrix.trace())
    result = trace(matrix, method=method, rtol=2e-2, maxiter=2000)
    assert isinstance(result, TraceResult)
    assert result.status is hs.Status.SUCCESS and result.converged
    assert result.method in (method, "exact")
    # the stopping test: SUCCESS means the reported error meets the tolerance
    assert result.standard_error <= 2e-2 * abs(result.estimate)
    assert abs(result.estimate - exact) <= 4 * result.standard_error + 1e-10 * abs(exact)


def test_default_is_xtrace_and_cheap_on_a_decaying_spectrum():
    matrix = low_rank_plus_noise(400, eps=1e-4)
    result = trace(matrix)
    assert result.method == "xtrace" and result.converged
    assert result.n_matvec <= 60
    assert abs(result.estimate - np.trace(matrix)) <= 0.01 * np.trace(matrix)


@pytest.mark.parametrize("method", METHODS)
def test_small_operator_gives_the_exact_trace(method):
    matrix = dense_symmetric(9)  # n <= the 10 probes of the first stopping test
    result = trace(matrix, method=method)
    assert result.method == "exact" and result.status is hs.Status.SUCCESS
    assert result.standard_error == 0.0 and result.n_matvec == 9
    assert result.estimate == pytest.approx(np.trace(matrix), rel=1e-13)


def test_unreachable_tolerance_switches_to_unit_vectors_when_affordable():
    matrix = dense_symmetric(150)
    result = trace(matrix, method="hutchinson", rtol=0.0, maxiter=400)
    assert result.method == "exact" and result.converged
    assert result.n_matvec == 10 + 150  # one block of probes, then the n unit vectors
    assert result.estimate == pytest.approx(np.trace(matrix), rel=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_tiny_maxiter_gives_max_iterations(method):
    matrix = low_rank_plus_noise(200, power=0.5)
    result = trace(matrix, method=method, rtol=1e-8, maxiter=12)
    assert result.status is hs.Status.MAX_ITERATIONS and not result.converged
    assert result.n_matvec <= 12
    assert np.isfinite(result.estimate) and result.standard_error > 1e-8 * abs(result.estimate)


def test_maxiter_one_is_a_single_hutchinson_probe():
    result = trace(dense_symmetric(50), method="xtrace", maxiter=1)
    assert result.method == "hutchinson" and result.n_matvec == 1
    assert result.standard_error == np.inf and result.status is hs.Status.MAX_ITERATIONS


def test_xtrace_samples_and_jackknife_match_a_direct_computation():
    # A non-symmetric A: XTrace is unbiased for any square matrix.
    rng = np.random.default_rng(3)
    n, k = 30, 6
    matrix = rng.standard_normal((n, n))
    operator = hs.aslinearoperator(matrix)
    from hvpseries.spectral._probes import ProbeStream

    sketch = RangeSketch(operator, ProbeStream(operator, distribution="gaussian", seed=1))
    sketch.grow(4)
    sketch.grow(2)
    omega = sketch.omega

    def xtrace_direct(probes_):
        images, values = matrix @ probes_, []
        for i in range(probes_.shape[1]):
            basis, _ = np.linalg.qr(np.delete(images, i, axis=1))
            deflate = np.eye(n) - basis @ basis.T
            w = probes_[:, i]
            values.append(np.trace(basis.T @ matrix @ basis) + w @ deflate @ matrix @ deflate @ w)
        return np.array(values)

    direct = xtrace_direct(omega)
    np.testing.assert_allclose(xtrace_samples(sketch), direct, rtol=1e-10, atol=1e-10)
    replicates = np.array([xtrace_direct(np.delete(omega, j, axis=1)).mean() for j in range(k)])
    jackknife = np.sqrt((k - 1) / k * np.sum((replicates - replicates.mean()) ** 2))
    estimate, error = xtrace_jackknife(sketch)
    assert estimate == pytest.approx(direct.mean(), rel=1e-10)
    assert error == pytest.approx(jackknife, rel=1e-8)


def test_nonsymmetric_operator_is_accepted():
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((300, 300)) + np.diag(np.linspace(1.0, 10.0, 300))
    operator = hs.aslinearoperator(matrix, symmetric=False)
    for method in METHODS:
        result = trace(operator, method=method, rtol=0.05, maxiter=3000)
        assert result.converged
        assert abs(result.estimate - np.trace(matrix)) <= 4 * result.standard_error + 1e-9


def test_exactly_low_rank_operator_is_recovered_by_the_sketch():
    rng = np.random.default_rng(2)
    factor = rng.standard_normal((200, 4))
    matrix = factor @ factor.T
    for method in ("hutch++", "xtrace"):
        result = trace(matrix, method=method, rtol=1e-6)
        assert result.converged and result.n_matvec <= 60
        assert result.estimate == pytest.approx(np.trace(matrix), rel=1e-8)


# Fixed budgets (rtol=0, maxiter < n): the share of 400 seeds whose error is within two
# reported standard errors. Observed (n = 80, 30 matvecs; dense / low rank): Hutchinson
# 0.943 / 0.923 (30 probes: the t distribution with 29 degrees of freedom gives 0.945; the
# low-rank samples are skewed), Hutch++ 0.923 / 0.893 (10 residual probes: t_9 gives 0.92),
# XTrace 0.985 / 1.0 (the jackknife is conservative; the paper's leave-one-out spread
# covered only 0.80-0.83 in the same runs at n = 100).
CALIBRATION = {
    "hutchinson": (0.84, 0.99),
    "hutch++": (0.84, 0.99),
    "xtrace": (0.92, 1.0),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", ["dense", "low-rank"])
def test_standard_error_covers_the_error_at_about_the_nominal_rate(name, method):
    matrix = dense_symmetric(80) if name == "dense" else low_rank_plus_noise(80)
    exact = np.trace(matrix)
    errors, standard_errors = [], []
    for seed in range(400):
        result = trace(matrix, method=method, rtol=0.0, maxiter=30, seed=seed)
        assert result.status is hs.Status.MAX_ITERATIONS and result.n_matvec == 30
        errors.append(result.estimate - exact)
        standard_errors.append(result.standard_error)
    errors, standard_errors = np.array(errors), np.array(standard_errors)
    covered = np.mean(np.abs(errors) <= 2 * standard_errors)
    low, high = CALIBRATION[method]
    assert low <= covered <= high, f"{method} on {name}: covered {covered:.3f}"
    # and the errors are not grossly overstated: the mean SE is within 3x the RMS error
    rms = np.sqrt(np.mean(errors**2))
    assert rms / 3 <= np.mean(standard_errors) <= 3 * rms


def test_deflation_has_lower_variance_on_a_decaying_spectrum():
    # Equal budgets of 30 matvecs. Observed RMS errors over 400 seeds (n = 80): Hutchinson
    # 0.265, Hutch++ 0.0122, XTrace 0.0083: variance ratios of about 470 and 1030.
    matrix = low_rank_plus_noise(80)
    spread = {}
    for method in METHODS:
        estimates = [
            trace(matrix, method=method, rtol=0.0, maxiter=30, seed=seed).estimate
            for seed in range(200)
        ]
        spread[method] = np.std(estimates)
    assert spread["hutch++"] ** 2 * 50 <= spread["hutchinson"] ** 2
    assert spread["xtrace"] ** 2 * 50 <= spread["hutchinson"] ** 2


def test_probes_do_not_depend_on_the_block_size():
    matrix = dense_symmetric(60)
    first = trace(matrix, method="hutchinson", rtol=0.0, maxiter=20, block_size=5)
    second = trace(matrix, method="hutchinson", rtol=0.0, maxiter=20, block_size=20)
    assert first.estimate == pytest.approx(second.estimate, rel=1e-13)
    assert first.standard_error == pytest.approx(second.standard_error, rel=1e-10)


@pytest.mark.parametrize("distribution", ["rademacher", "gaussian"])
def test_probe_distribution(distribution):
    block = probes(np.eye(500), 4, distribution=distribution, seed=3)
    assert block.shape == (500, 4)
    if distribution == "rademacher":
        assert set(np.unique(block)) == {-1.0, 1.0}
    else:
        assert abs(np.std(block) - 1.0) < 0.1
    result = trace(dense_symmetric(200), distribution=distribution, rtol=0.05)
    assert result.converged


@pytest.mark.parametrize("method", METHODS)
def test_torch_matches_numpy_at_the_same_seed(method):
    torch = pytest.importorskip("torch")
    matrix = low_rank_plus_noise(120)
    expected = trace(matrix, method=method, rtol=0.0, maxiter=40, seed=4)
    result = trace(torch.as_tensor(matrix), method=method, rtol=0.0, maxiter=40, seed=4)
    assert result.n_matvec == expected.n_matvec and result.method == expected.method
    assert result.estimate == pytest.approx(expected.estimate, rel=1e-9)
    assert result.standard_error == pytest.approx(expected.standard_error, rel=1e-6)


def test_result_is_frozen():
    result = trace(np.eye(3))
    with pytest.raises(AttributeError):
        result.estimate = 1.0  # type: ignore[misc]


def test_nonfinite_operator_is_reported():
    matrix = dense_symmetric(100)
    matrix[3, 3] = np.nan
    result = trace(hs.MatrixOperator(matrix, check_finite=False), method="hutchinson")
    assert result.status is hs.Status.NONFINITE and not result.converged


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"method": "lanczos"}, ValueError, "method must be one of"),
        ({"rtol": -1.0}, ValueError, "rtol"),
        ({"atol": "0"}, TypeError, "atol"),
        ({"maxiter": 0}, ValueError, "maxiter"),
        ({"maxiter": 2.5}, TypeError, "maxiter"),
        ({"block_size": 0}, ValueError, "block_size"),
        ({"distribution": "uniform"}, ValueError, "distribution"),
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": 1.5}, TypeError, "seed"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        trace(np.eye(20), **kwargs)


def test_bad_operators():
    with pytest.raises(ValueError, match="square"):
        trace(np.ones((3, 4)))
    with pytest.raises(TypeError, match="real operators"):
        trace(np.eye(3, dtype=complex))
    with pytest.raises(TypeError, match="LinearOperator"):
        trace([[1.0]])
    with pytest.raises(TypeError):
        trace(np.eye(3), 1e-2)  # rtol is keyword-only


def test_trace_of_a_function_is_stochastic_lanczos_quadrature() -> None:
    from hvpseries.spectral import trace_of_function

    rng = np.random.default_rng(4)
    q, _ = np.linalg.qr(rng.standard_normal((60, 60)))
    eigenvalues = np.linspace(0.1, 2.0, 60)
    a = (q * eigenvalues) @ q.T
    a = 0.5 * (a + a.T)
    result = trace(a, f=np.exp, rtol=1e-2, seed=3)
    direct = trace_of_function(a, np.exp, rtol=1e-2, seed=3)
    assert result.estimate == direct.estimate and result.n_matvec == direct.n_matvec
    assert abs(result.estimate - np.exp(eigenvalues).sum()) <= 3 * result.standard_error + 1e-6
    with pytest.raises(ValueError, match="do not apply"):
        trace(a, f=np.exp, method="hutchinson")
