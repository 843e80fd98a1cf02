import numpy as np
import pytest

import hvpseries as hs
from hvpseries import krylov
from hvpseries.krylov._chebyshev import chebyshev_coefficients
from tests.problems import PROBLEMS


def _interval(problem, pad=0.02):
    lo, hi = problem.eigenvalues.min(), problem.eigenvalues.max()
    return lo - pad * (hi - lo), hi + pad * (hi - lo)


CASES = [
    ("spd", lambda t: 1 / np.sqrt(t)),
    ("spd", np.sqrt),
    ("indefinite", lambda t: 1 / np.sqrt(t * t + 0.01)),
    ("clustered", np.exp),
]


@pytest.mark.parametrize(("name", "f"), CASES)
@pytest.mark.parametrize("columns", [None, 3])
def test_chebyshev_matches_eigh(backend, name, f, columns):
    problem = PROBLEMS[name]
    lo, hi = _interval(problem)
    if name == "spd":
        lo = problem.eigenvalues.min() * 0.99
    b = problem.rhs(columns)
    rtol = 1e-8 if backend.dtype_name == "float64" else 1e-4
    result = krylov.funm_chebyshev(
        backend.asarray(problem.matrix), backend.asarray(b), f, interval=(lo, hi), rtol=rtol
    )
    assert result.status is hs.Status.SUCCESS
    reference = problem.apply_function(f, b)
    error = np.linalg.norm(backend.to_numpy(result.x) - reference, axis=0)
    estimate = np.atleast_1d(result.error_estimate)
    # the bound holds (up to float32 rounding) and meets the tolerance
    assert np.all(error <= estimate + 50 * backend.eps * np.linalg.norm(b, axis=0))
    assert np.all(error <= 2 * rtol * np.linalg.norm(reference, axis=0))
    assert result.n_matvec == result.n_iter * (1 if columns is None else columns)


def test_chebyshev_degree_grows_like_sqrt_kappa():
    degrees = []
    for kappa in (1e2, 1e4):
        eigenvalues = np.logspace(-np.log10(kappa), 0, 50)
        A = np.diag(eigenvalues)
        result = krylov.funm_chebyshev(
            A,
            np.ones(50),
            lambda t: 1 / np.sqrt(t),
            interval=(1 / kappa, 1.0),
            rtol=1e-8,
            maxiter=10_000,
        )
        assert result.converged
        degrees.append(result.n_iter)
    assert 5 < degrees[1] / degrees[0] < 20  # sqrt(100) = 10


def test_chebyshev_detects_an_interval_that_misses_the_spectrum():
    problem = PROBLEMS["spd"]
    result = krylov.funm_chebyshev(
        problem.matrix, problem.rhs(), lambda t: 1 / t, interval=(0.2, 1.0), rtol=1e-8
    )
    assert result.status is hs.Status.DIVERGED
    assert "interval" in result.info["reason"]


def test_chebyshev_fixed_degree_is_a_fixed_budget():
    problem = PROBLEMS["spd"]
    result = krylov.funm_chebyshev(
        problem.matrix, problem.rhs(), np.sqrt, interval=(0.0, 1.0), degree=7
    )
    assert result.status is hs.Status.COMPLETED and result.n_matvec == 7
    error = np.linalg.norm(result.x - problem.apply_function(np.sqrt, problem.rhs()))
    assert error <= result.error_estimate


def test_chebyshev_callback_and_zero_rhs():
    seen = []
    result = krylov.funm_chebyshev(
        np.diag([1.0, 2.0]), np.zeros(2), np.exp, interval=(0.5, 2.5), callback=seen.append
    )
    assert result.converged and not np.any(result.x) and len(seen) == result.n_iter


def test_chebyshev_coefficients_of_a_polynomial_are_exact():
    c = chebyshev_coefficients(lambda t: 4 * t**3 - 3 * t, (-1.0, 1.0), 16)
    np.testing.assert_allclose(c[:5], [0, 0, 0, 1, 0], atol=1e-14)


@pytest.mark.parametrize("interval", [(1.0, 1.0), (2.0, 1.0), (0.0, np.inf), "ab", (0, None)])
def test_chebyshev_rejects_bad_intervals(interval):
    with pytest.raises((TypeError, ValueError)):
        krylov.funm_chebyshev(np.eye(2), np.ones(2), np.exp, interval=interval)


def test_chebyshev_rejects_f_singular_on_the_interval():
    with pytest.raises(ValueError, match="finite"), np.errstate(divide="ignore"):
        krylov.funm_chebyshev(np.eye(2), np.ones(2), lambda t: 1 / t, interval=(-1.0, 1.0))
