import numpy as np
import pytest

import hvpseries as hs
from hvpseries import Status
from hvpseries.series import inv_sqrt, neumann, sqrt
from tests.problems import SpectralProblem

SPD = SpectralProblem("spd", np.logspace(0, 1, 30) / 10, seed=21)
PSD_WITH_ZERO = SpectralProblem("psd", np.concatenate([[0.0], np.linspace(0.2, 1.0, 19)]), seed=22)
INDEFINITE = SpectralProblem("indefinite", np.linspace(-1.0, 1.0, 20) + 0.05, seed=23)

SOLVERS = {
    "inv_sqrt": (inv_sqrt, lambda t, d: (t + d) ** -0.5),
    "sqrt": (sqrt, lambda t, d: np.sqrt(t + d)),
    "neumann": (neumann, lambda t, d: 1 / (t + d)),
}


@pytest.mark.parametrize("method", sorted(SOLVERS))
@pytest.mark.parametrize("columns", [None, 2])
@pytest.mark.parametrize("damping", [0.0, 0.2])
def test_converges_to_eigh_reference(backend, method, columns, damping):
    solver, f = SOLVERS[method]
    b = SPD.rhs(columns)
    reference = SPD.apply_function(lambda t: f(t, damping), b)
    rtol = 1e-8 if backend.dtype_name == "float64" else 1e-4
    result = solver(backend.asarray(SPD.matrix), backend.asarray(b), damping=damping, rtol=rtol)
    assert result.status is Status.SUCCESS
    x = backend.to_numpy(result.x)
    errors = np.linalg.norm(x - reference, axis=0) / np.linalg.norm(reference, axis=0)
    assert np.all(errors <= 10 * rtol)
    assert result.info["coefficients"] == method


def test_auto_scale_uses_the_midpoint_of_a_positive_enclosure():
    result = neumann(SPD.matrix, SPD.rhs(), rtol=1e-10)
    bounds = hs.spectral_bounds(SPD.matrix)
    if bounds.lower > 0:
        assert result.info["scale"] == pytest.approx((bounds.lower + bounds.upper) / 2)
    else:
        expected = max(np.max(bounds.ritz_values), 1.001 * bounds.upper / 2)
        assert result.info["scale"] == pytest.approx(expected)
    assert result.converged


def test_neumann_with_a_given_scale_is_richardson():
    A = np.diag([1.0, 2.0, 3.0])
    b = np.ones(3)
    result = neumann(A, b, scale=2.0, num_terms=3, acceleration=None)
    # V^-1 (I + Z + Z^2) b with Z = I - A/2 = diag(0.5, 0, -0.5)
    np.testing.assert_allclose(result.x, np.array([1.75, 1.0, 0.75]) / 2.0)
    assert result.n_matvec == 2


def test_sqrt_on_a_zero_eigenvalue_still_converges_slowly_but_surely():
    b = PSD_WITH_ZERO.rhs()
    reference = PSD_WITH_ZERO.apply_function(lambda t: np.sqrt(np.maximum(t, 0)), b)
    result = sqrt(PSD_WITH_ZERO.matrix, b, num_terms=400, acceleration="tail")
    assert np.linalg.norm(result.x - reference) < 1e-6 * np.linalg.norm(reference)


@pytest.mark.parametrize("method", sorted(SOLVERS))
def test_indefinite_operator_is_reported(method):
    solver, _ = SOLVERS[method]
    result = solver(INDEFINITE.matrix, INDEFINITE.rhs(), rtol=1e-6)
    assert result.status is Status.INDEFINITE
    assert not result.converged
    assert "abs_inv" in result.info["advice"]


def test_negative_eigenvalue_found_by_growth_with_a_user_scale():
    A = np.diag([-0.5, 1.0, 2.0])
    result = neumann(A, np.ones(3), scale=2.0, num_terms=200)
    assert result.status is Status.INDEFINITE


def test_too_small_scale_diverges():
    A = np.diag([0.5, 1.0, 4.0])
    result = inv_sqrt(A, np.ones(3), scale=1.0, num_terms=200)
    assert result.status is Status.DIVERGED
    assert "scale" in result.info["advice"]


def test_lower_bound_scale():
    A = np.diag([0.5, 1.0, 2.0])
    result = inv_sqrt(A, np.ones(3), scale="lower_bound", rtol=1e-10)
    assert result.info["scale_source"] == "lower_bound"
    np.testing.assert_allclose(result.x, np.diag(A) ** -0.5, rtol=1e-8)


def test_tags_are_respected():
    not_psd = hs.aslinearoperator(SPD.matrix).with_structure(symmetric=True, psd=False)
    with pytest.raises(ValueError, match="positive"):
        inv_sqrt(not_psd, SPD.rhs())
    nonsymmetric = hs.aslinearoperator(np.triu(np.ones((3, 3))), symmetric=False)
    with pytest.raises(ValueError, match="symmetric"):
        neumann(nonsymmetric, np.ones(3))


def test_zero_rhs_and_nan_rhs():
    zero = sqrt(SPD.matrix, np.zeros((30, 2)))
    assert zero.status is Status.SUCCESS and zero.n_matvec == 0
    bad = np.ones(30)
    bad[0] = np.inf
    assert neumann(SPD.matrix, bad).status is Status.NONFINITE


def test_throw_raises_on_indefinite():
    with pytest.raises(hs.ConvergenceError):
        neumann(INDEFINITE.matrix, INDEFINITE.rhs(), throw=True)
