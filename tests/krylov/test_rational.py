import mpmath
import numpy as np
import pytest

import hvpseries as hs
from hvpseries import krylov
from hvpseries.krylov._rational import quadrature_nodes
from tests.problems import PROBLEMS
from tests.problems import matrix_with_eigenvalues as _matrix


def _function(variant, damping):
    if variant == "damped":
        return lambda t: 1 / (np.abs(t) + damping)
    return lambda t: 1 / np.sqrt(t * t + damping)


@pytest.mark.parametrize("damping", [0.0, 0.3])
@pytest.mark.parametrize("x", [1e-4, 0.5, 2.0, 50.0])
def test_stieltjes_representation_of_the_damped_function(damping, x):
    # 1 / (sqrt(x) + d) = (1/pi) int_0^inf sqrt(s) / ((s + d^2)(s + x)) ds
    mpmath.mp.dps = 30
    value = mpmath.quad(
        lambda s: mpmath.sqrt(s) / ((s + damping**2) * (s + x)), [0, x, 1, mpmath.inf]
    )
    assert float(value / mpmath.pi) == pytest.approx(1 / (np.sqrt(x) + damping), rel=1e-12)


@pytest.mark.parametrize("variant", ["damped", "quasi-damped"])
@pytest.mark.parametrize("damping", [0.0, 0.05, 2.0])
def test_quadrature_rule_is_accurate_on_the_interval(variant, damping):
    rule = quadrature_nodes(damping=damping, variant=variant, lower=1e-3, upper=1.0, tolerance=1e-9)
    magnitudes = np.logspace(-3, 0, 200)
    approximation = (rule.weights[None, :] / (magnitudes[:, None] ** 2 + rule.shifts)).sum(1)
    approximation += rule.rhs_weight
    exact = _function(variant, damping)(magnitudes)
    assert np.max(np.abs(approximation / exact - 1)) <= 1e-8
    assert rule.shifts.size < 80


@pytest.mark.parametrize("name", ["spd", "indefinite", "clustered"])
@pytest.mark.parametrize("variant", ["damped", "quasi-damped"])
@pytest.mark.parametrize("damping", [0.0, 0.1])
def test_rational_matches_eigh_with_interval(backend, name, variant, damping):
    problem = PROBLEMS[name]
    magnitudes = np.abs(problem.eigenvalues)
    b = problem.rhs()
    rtol = 1e-8 if backend.dtype_name == "float64" else 1e-3
    result = krylov.abs_inv_rational(
        backend.asarray(problem.matrix),
        backend.asarray(b),
        damping=damping,
        variant=variant,
        rtol=rtol,
        interval=(magnitudes.min(), magnitudes.max()),
    )
    assert result.status is hs.Status.SUCCESS, result.info
    reference = problem.apply_function(_function(variant, damping), b)
    error = np.linalg.norm(backend.to_numpy(result.x) - reference)
    assert error <= 10 * rtol * np.linalg.norm(reference)
    assert error <= 10 * result.error_estimate


@pytest.mark.parametrize("variant", ["damped", "quasi-damped"])
def test_rational_without_interval_uses_spectral_bounds(variant):
    problem = PROBLEMS["indefinite"]
    b = problem.rhs(2)
    A = hs.CountingOperator(hs.aslinearoperator(problem.matrix))
    result = krylov.abs_inv_rational(A, b, variant=variant, rtol=1e-8)
    assert result.converged
    assert result.n_matvec == A.n_matvec
    reference = problem.apply_function(_function(variant, 0.0), b)
    error = np.linalg.norm(result.x - reference, axis=0)
    assert np.all(error <= 10 * 1e-8 * np.linalg.norm(reference, axis=0))
    assert result.error_estimate.shape == (2,)
    assert result.info["ritz_min"] == pytest.approx(np.abs(problem.eigenvalues).min(), rel=1e-3)


@pytest.mark.parametrize("variant", ["damped", "quasi-damped"])
def test_rational_zero_eigenvalues_with_damping(variant):
    problem = PROBLEMS["with_zero"]
    b = problem.rhs()
    result = krylov.abs_inv_rational(problem.matrix, b, damping=0.1, variant=variant, rtol=1e-8)
    reference = problem.apply_function(_function(variant, 0.1), b)
    # damping tames the zero eigenvalues; the damped variant loses a digit to rounding there
    assert np.linalg.norm(result.x - reference) <= 1e-6 * np.linalg.norm(reference)


def test_rational_singular_without_damping_is_reported():
    problem = PROBLEMS["with_zero"]
    result = krylov.abs_inv_rational(problem.matrix, problem.rhs(), rtol=1e-8)
    assert not result.converged
    assert "damping" in result.info["reason"]


def test_rational_callback_and_block():
    problem = PROBLEMS["spd"]
    seen = []
    result = krylov.abs_inv_rational(
        problem.matrix,
        problem.rhs(2),
        interval=(0.05, 1.0),
        rtol=1e-6,
        callback=lambda xk: seen.append(xk.shape),
    )
    assert result.converged and seen and set(seen) == {(40, 2)} and len(seen) == result.n_iter


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"damping": -1.0}, ValueError),
        ({"variant": "other"}, ValueError),
        ({"interval": (2.0, 1.0)}, ValueError),
        ({"interval": (-1.0, 1.0)}, ValueError),
        ({"rtol": -1.0}, ValueError),
        ({"damping": "0"}, TypeError),
    ],
)
def test_rational_rejects_bad_arguments(kwargs, error):
    with pytest.raises(error):
        krylov.abs_inv_rational(np.eye(3), np.ones(3), **kwargs)


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_float32_coefficient_overflow_is_a_status_not_a_crash(library):
    """Eigenvalues up to 2.5e8 squared overflow float32's CG coefficients (a fuzz case).

    torch float32 raised SciPy's "array must not contain infs or NaNs" from the Ritz-value
    refresh; both libraries must return a result whose status says whether it is usable.
    """
    rng = np.random.default_rng(7)
    eigenvalues = np.array([-1.75e8] * 4 + [3.55] + [2.56e7] * 5 + [2.52e8] * 3)
    Q, _ = np.linalg.qr(rng.standard_normal((13, 13)))
    A, b = (Q * eigenvalues) @ Q.T, rng.standard_normal(13)
    if library == "torch":
        torch = pytest.importorskip("torch")
        A32, b32 = torch.tensor(A, dtype=torch.float32), torch.tensor(b, dtype=torch.float32)
    else:
        A32, b32 = A.astype(np.float32), b.astype(np.float32)
    result = krylov.abs_inv_rational(A32, b32, damping=2.5, variant="quasi-damped", rtol=2e-3)
    x = np.asarray(result.x.cpu() if library == "torch" else result.x, dtype=np.float64)
    exact = Q @ ((Q.T @ b) / np.sqrt(eigenvalues**2 + 2.5))  # (A^2 + d I)^-1/2 b
    error = np.linalg.norm(x - exact) / np.linalg.norm(exact)
    if result.converged:  # a success must be one
        assert error <= 2e-2


def test_the_users_operator_keeps_its_numpy_warnings():
    """The solver silences overflow in its own coefficients, not in the user's matvec."""
    A = np.diag(np.linspace(1.0, 2.0, 10))

    def matvec(x):
        np.float64(1.0) / np.float64(0.0)  # a warning of the user's own code
        return A @ x

    operator = hs.FunctionOperator(matvec, (10, 10), dtype=np.float64, symmetric=True)
    with pytest.warns(RuntimeWarning, match="divide by zero"):
        # with the interval given, every matvec runs inside the multi-shift solver
        krylov.abs_inv_rational(operator, np.ones(10), interval=(1.0, 2.0), rtol=1e-6)


def test_rational_with_tiny_eigenvalues_and_damping_is_not_a_false_success() -> None:
    eigenvalues = np.r_[0.0, np.linspace(-2, -0.5, 40), np.linspace(0.5, 3, 40)]
    A, q = _matrix(eigenvalues)
    b = np.random.default_rng(1).standard_normal(eigenvalues.size)
    result = krylov.abs_inv_rational(A, b, damping=1e-3, rtol=1e-10)
    reference = q @ ((q.T @ b) / (np.abs(eigenvalues) + 1e-3))
    true_error = np.linalg.norm(result.x - reference)
    if result.converged:
        assert true_error <= 1e-9 * np.linalg.norm(reference)
    assert true_error <= 10 * float(np.max(result.error_estimate))


@pytest.mark.parametrize(
    "call",
    [
        lambda b: krylov.cg_multishift(np.eye(3), b, [0.0, 1.0]),
        lambda b: krylov.abs_inv_rational(np.eye(3), b),
        lambda b: hs.abs_inv(np.eye(3), b, method="rational"),
    ],
    ids=["multishift", "rational", "front-end-rational"],
)
def test_non_finite_right_hand_sides_are_reported(call) -> None:
    result = call(np.array([1.0, np.nan, 0.0]))
    assert result.status is hs.Status.NONFINITE
    assert result.n_matvec == 0
