"""spectral_bounds and power_iteration."""

from __future__ import annotations

import numpy as np
import pytest

import hvpseries as hs
from tests.problems import PROBLEMS


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_bounds_enclose_the_spectrum(backend, name) -> None:
    problem = PROBLEMS[name]
    bounds = hs.spectral_bounds(backend.asarray(problem.matrix), num_matvecs=12)
    assert bounds.lower <= problem.eigenvalues.min()
    assert bounds.upper >= problem.eigenvalues.max()
    assert bounds.max_abs >= np.abs(problem.eigenvalues).max()
    assert bounds.n_matvec <= 12
    ritz = bounds.ritz_values
    slack = 1e3 * backend.eps
    assert ritz.min() >= problem.eigenvalues.min() - slack
    assert ritz.max() <= problem.eigenvalues.max() + slack
    # Not absurdly loose: within the spectral width of the truth.
    width = problem.eigenvalues.max() - problem.eigenvalues.min()
    assert bounds.width <= 3 * width


def test_exact_after_breakdown_and_deterministic() -> None:
    A = np.diag([1.0, 1.0, 2.0, 5.0])
    bounds = hs.spectral_bounds(A, num_matvecs=10)
    assert bounds.exact and bounds.n_matvec == 3
    assert bounds.lower == pytest.approx(1.0) and bounds.upper == pytest.approx(5.0)
    again = hs.spectral_bounds(A, num_matvecs=10)
    assert again == bounds or np.array_equal(again.ritz_values, bounds.ritz_values)


def test_bounds_validation() -> None:
    with pytest.raises(ValueError, match="square"):
        hs.spectral_bounds(np.ones((2, 3)))
    with pytest.raises(ValueError, match="symmetric"):
        hs.spectral_bounds(hs.aslinearoperator(np.eye(2), symmetric=False))
    with pytest.raises(ValueError, match="num_matvecs"):
        hs.spectral_bounds(np.eye(2), num_matvecs=0)
    with pytest.raises(ValueError, match="seed"):
        hs.spectral_bounds(np.eye(2), seed=-1)


def test_power_iteration(backend) -> None:
    problem = PROBLEMS["indefinite"]
    result = hs.power_iteration(backend.asarray(problem.matrix), rtol=1e-3, maxiter=5000)
    top = problem.eigenvalues[np.argmax(np.abs(problem.eigenvalues))]
    assert result.converged
    assert result.eigenvalue == pytest.approx(top, rel=1e-2)


def test_power_iteration_start_vector_and_budget() -> None:
    A = np.diag([1.0, 0.9, 0.1])
    result = hs.power_iteration(A, np.ones(3), rtol=1e-14, maxiter=3)
    assert not result.converged and result.n_matvec == 3
    with pytest.raises(ValueError, match="nonzero"):
        hs.power_iteration(A, np.zeros(3))


def test_spectral_bounds_of_a_nan_operator_is_an_error() -> None:
    A = hs.FunctionOperator(lambda v: v * np.nan, (5, 5), symmetric=True)
    with pytest.raises(ValueError, match="NaN or infinite"):
        hs.spectral_bounds(A)
