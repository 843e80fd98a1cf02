"""Stochastic diagonal estimation: exact answers, calibration, variance, stopping rule."""

from __future__ import annotations

import numpy as np
import pytest

import hvpseries as hs
from hvpseries.spectral import DiagonalResult, diagonal
from tests.spectral.test_trace import dense_symmetric, laplacian_2d, low_rank_plus_noise

METHODS = ("hutchinson", "xdiag")


def _relative_error(result, exact):
    return np.linalg.norm(np.asarray(result.estimate) - exact) / np.linalg.norm(exact)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", ["dense", "laplacian", "low-rank"])
def test_estimate_within_tolerance_of_known_diagonal(name, method):
    matrix = {
        "dense": lambda: dense_symmetric(300) + 10.0 * np.eye(300),
        "laplacian": lambda: laplacian_2d(25),
        "low-rank": lambda: low_rank_plus_noise(300, eps=1e-2),
    }[name]()
    exact = matrix.diagonal()
    result = diagonal(matrix, method=method, rtol=0.1, maxiter=1000)
    assert isinstance(result, DiagonalResult)
    assert result.converged and result.method in (method, "exact")
    assert result.estimate.shape == (matrix.shape[0],)
    norm = np.linalg.norm(result.estimate)
    assert np.linalg.norm(result.standard_error) <= 0.1 * norm  # SUCCESS meets the test
    assert _relative_error(result, exact) <= 0.25


def test_small_operator_gives_the_exact_diagonal():
    matrix = dense_symmetric(9)
    for method in METHODS:
        result = diagonal(matrix, method=method)
        assert result.method == "exact" and result.n_matvec == 9
        np.testing.assert_allclose(result.estimate, np.diag(matrix), rtol=1e-14)
        assert not np.any(result.standard_error)


def test_diagonal_matrix_is_exact_with_rademacher_probes():
    matrix = np.diag(np.linspace(1.0, 2.0, 100))
    result = diagonal(matrix, method="hutchinson", rtol=1e-8)
    assert result.converged and result.n_matvec == 10
    np.testing.assert_allclose(result.estimate, np.diag(matrix), rtol=1e-14)


@pytest.mark.parametrize("method", METHODS)
def test_tiny_maxiter_gives_max_iterations(method):
    result = diagonal(dense_symmetric(200), method=method, rtol=1e-6, maxiter=6)
    assert result.status is hs.Status.MAX_ITERATIONS and result.n_matvec <= 6
    assert np.all(np.isfinite(result.estimate))


def test_xdiag_on_a_nonsymmetric_operator_uses_the_adjoint():
    rng = np.random.default_rng(1)
    u = np.linalg.qr(rng.standard_normal((300, 300)))[0]
    v = np.linalg.qr(rng.standard_normal((300, 300)))[0]
    matrix = (u * 0.7 ** np.arange(300)) @ v.T
    counting = hs.CountingOperator(hs.aslinearoperator(matrix, symmetric=False))
    result = diagonal(counting, method="xdiag", rtol=0.1)
    assert result.converged and result.method == "xdiag"
    assert _relative_error(result, np.diag(matrix)) <= 0.05
    assert counting.n_matvec == counting.n_rmatvec == result.n_matvec // 2


# Per-entry coverage |error_r| <= 2 SE_r over 200 seeds at 40 matvecs (n = 80). Observed:
# Hutchinson 0.948 (dense) and 0.952 (low rank), XDiag 0.924 (dense) and 0.840 (low rank:
# the exchangeable samples are correlated, so their spread is optimistic by about 1.3).
@pytest.mark.parametrize(
    ("method", "name", "low", "high"),
    [
        ("hutchinson", "dense", 0.90, 0.99),
        ("hutchinson", "low-rank", 0.90, 0.99),
        ("xdiag", "dense", 0.88, 0.99),
        ("xdiag", "low-rank", 0.75, 0.95),
    ],
)
def test_standard_error_coverage(method, name, low, high):
    matrix = dense_symmetric(80) if name == "dense" else low_rank_plus_noise(80)
    exact = np.diag(matrix)
    errors, standard_errors = [], []
    for seed in range(200):
        result = diagonal(matrix, method=method, rtol=0.0, maxiter=40, seed=seed)
        assert result.status is hs.Status.MAX_ITERATIONS
        errors.append(result.estimate - exact)
        standard_errors.append(result.standard_error)
    errors, standard_errors = np.array(errors), np.array(standard_errors)
    covered = np.mean(np.abs(errors) <= 2 * standard_errors)
    assert low <= covered <= high, f"{method} on {name}: covered {covered:.3f}"


def test_xdiag_has_lower_variance_on_a_decaying_spectrum():
    # 40 matvecs, 100 seeds; observed RMS errors 0.016 (Hutchinson) and 0.00063 (XDiag):
    # a variance ratio of about 650.
    matrix = low_rank_plus_noise(80)
    exact = np.diag(matrix)
    rms = {}
    for method in METHODS:
        squares = [
            np.mean(
                (diagonal(matrix, method=method, rtol=0.0, maxiter=40, seed=s).estimate - exact)
                ** 2
            )
            for s in range(100)
        ]
        rms[method] = np.sqrt(np.mean(squares))
    assert rms["xdiag"] ** 2 * 100 <= rms["hutchinson"] ** 2


def test_gaussian_probes_ratio_estimator():
    matrix = dense_symmetric(200) + 10 * np.eye(200)
    result = diagonal(matrix, method="hutchinson", distribution="gaussian", rtol=0.05)
    assert result.converged
    assert _relative_error(result, np.diag(matrix)) <= 0.15


@pytest.mark.parametrize("method", METHODS)
def test_torch_matches_numpy_at_the_same_seed(method):
    torch = pytest.importorskip("torch")
    matrix = low_rank_plus_noise(100)
    expected = diagonal(matrix, method=method, rtol=0.0, maxiter=30, seed=2)
    result = diagonal(torch.as_tensor(matrix), method=method, rtol=0.0, maxiter=30, seed=2)
    assert isinstance(result.estimate, torch.Tensor)
    assert result.n_matvec == expected.n_matvec
    np.testing.assert_allclose(result.estimate.numpy(), expected.estimate, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(
        result.standard_error.numpy(), expected.standard_error, rtol=1e-6, atol=1e-12
    )


def test_bad_arguments():
    with pytest.raises(ValueError, match="method must be one of"):
        diagonal(np.eye(20), method="hutch++")
    with pytest.raises(ValueError, match="square"):
        diagonal(np.ones((2, 3)))
    with pytest.raises(ValueError, match="rtol"):
        diagonal(np.eye(20), rtol=float("nan"))
    with pytest.raises(TypeError, match="block_size"):
        diagonal(np.eye(20), block_size=2.0)
    with pytest.raises(TypeError, match="adjoint"):
        operator = hs.FunctionOperator(lambda x: 2 * x, (30, 30))
        diagonal(operator, method="xdiag")
