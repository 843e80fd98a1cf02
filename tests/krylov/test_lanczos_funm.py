"""krylov.funm_lanczos against dense eigh references on prescribed spectra."""

from __future__ import annotations

import numpy as np
import pytest

import hvpseries as hs
from hvpseries import krylov
from tests.problems import PROBLEMS, SpectralProblem


def damped_abs_inv(damping):
    return lambda t: 1.0 / (np.abs(t) + damping)


# (problem, function, needs damping) — near-zero eigenvalues only with damping.
CASES = [
    ("spd", "inv_sqrt", lambda t: 1.0 / np.sqrt(t)),
    ("indefinite", "abs_inv", damped_abs_inv(0.0)),
    ("indefinite", "abs_inv_damped", damped_abs_inv(0.3)),
    ("clustered", "abs_inv", damped_abs_inv(0.0)),
    ("with_zero", "abs_inv_damped", damped_abs_inv(0.1)),
    ("indefinite", "exp", np.exp),
]


def relative_error(x, reference):
    return np.linalg.norm(x - reference) / np.linalg.norm(reference)


@pytest.mark.parametrize(("name", "label", "f"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
@pytest.mark.parametrize("columns", [None, 3])
def test_matches_dense_reference(backend, name, label, f, columns) -> None:
    problem = PROBLEMS[name]
    b = problem.rhs(columns)
    reference = problem.apply_function(f, b)
    rtol = 1e-9 if backend.dtype_name == "float64" else 1e-4
    result = krylov.funm_lanczos(backend.asarray(problem.matrix), backend.asarray(b), f, rtol=rtol)
    assert result.converged, result
    assert result.x.shape == b.shape
    assert result.x.dtype == backend.dtype
    x = backend.to_numpy(result.x)
    tolerance = 1e-7 if backend.dtype_name == "float64" else 5e-3
    assert relative_error(x, reference) <= tolerance
    if columns is not None:
        assert np.asarray(result.error_estimate).shape == (columns,)
    assert result.info["method"] == "lanczos"


def _hard_problems():
    rng = np.random.default_rng(0)
    yield SpectralProblem(
        "log-indefinite",
        np.concatenate([np.logspace(-2, 0, 240), -np.logspace(-2, 0, 160)]),
        seed=11,
    )
    yield SpectralProblem("uniform", rng.uniform(-1, 1, 300), seed=12)
    yield from PROBLEMS.values()


@pytest.mark.parametrize("rtol", [1e-3, 1e-6, 1e-10])
@pytest.mark.parametrize("reorthogonalize", ["partial", "none"])
def test_error_estimate_is_reliable(rtol, reorthogonalize) -> None:
    for problem in _hard_problems():
        damping = 0.05 if np.min(np.abs(problem.eigenvalues)) == 0 else 0.0
        f = damped_abs_inv(damping)
        b = problem.rhs()
        reference = problem.apply_function(f, b)
        # 1/|t| could be anything on a hidden eigenvalue just below 0: the certificate needs
        # positive definite operators tagged (untagged, they end UNVERIFIED: tested elsewhere).
        psd = True if np.min(problem.eigenvalues) > 0 else None
        result = krylov.funm_lanczos(
            hs.aslinearoperator(problem.matrix, psd=psd),
            b,
            f,
            rtol=rtol,
            reorthogonalize=reorthogonalize,
        )
        if result.status is hs.Status.STAGNATED:
            # Allowed only where rtol is below what the conditioning permits in float64.
            assert rtol <= 1e-9, (problem.name, result)
        else:
            assert result.converged, (problem.name, result)
        error = np.linalg.norm(result.x - reference)
        assert error <= 10 * result.error_estimate + 1e-13 * np.linalg.norm(reference), (
            problem.name,
            error,
            result.error_estimate,
        )
        if result.converged:
            assert error <= 10 * rtol * np.linalg.norm(reference), problem.name


def test_two_pass_equals_stored_basis() -> None:
    problem = SpectralProblem("two-pass", np.linspace(-1, 2, 150) + 0.013, seed=9)
    f = damped_abs_inv(0.0)
    b = problem.rhs(2)
    stored = krylov.funm_lanczos(problem.matrix, b, f, rtol=1e-8, reorthogonalize="none")
    two_pass = krylov.funm_lanczos(problem.matrix, b, f, rtol=1e-8, memory="two-pass")
    np.testing.assert_allclose(two_pass.x, stored.x, rtol=1e-12, atol=1e-12)
    assert two_pass.n_iter == stored.n_iter
    assert stored.n_matvec < two_pass.n_matvec < 2 * stored.n_matvec
    assert two_pass.info["memory"] == "two-pass"
    reference = problem.apply_function(f, b)
    assert relative_error(two_pass.x, reference) < 1e-7


def test_breakdown_returns_exact_answer() -> None:
    problem = PROBLEMS["indefinite"]
    b = problem.eigenvectors[:, [1, 7, 30]] @ np.array([1.0, 1.0, 1.0])
    f = damped_abs_inv(0.0)
    result = krylov.funm_lanczos(problem.matrix, b, f, rtol=1e-10)
    assert result.converged and result.n_matvec == 3
    np.testing.assert_allclose(result.x, problem.apply_function(f, b), rtol=1e-11)


def test_zero_rhs_column_and_counting() -> None:
    problem = PROBLEMS["spd"]
    A = hs.CountingOperator(hs.aslinearoperator(problem.matrix))
    b = np.zeros((problem.n, 2))
    b[:, 1] = problem.rhs()
    result = krylov.funm_lanczos(A, b, np.sqrt, rtol=1e-8)
    assert result.converged
    assert np.all(result.x[:, 0] == 0)
    assert result.n_matvec == A.n_matvec
    assert result.error_estimate[0] == 0.0


def test_callback_and_max_iterations() -> None:
    problem = SpectralProblem("slow", np.logspace(-3, 0, 200) * np.resize([1, -1], 200), seed=3)
    calls = []
    result = krylov.funm_lanczos(
        problem.matrix,
        problem.rhs(),
        damped_abs_inv(0.0),
        rtol=1e-12,
        maxiter=30,
        progress=lambda n_matvec, estimate: calls.append((n_matvec, estimate)),
    )
    assert result.status is hs.Status.MAX_ITERATIONS and not result.converged
    assert result.n_matvec == 30
    assert calls and calls[-1][0] == 30
    with pytest.raises(hs.ConvergenceError):
        krylov.funm_lanczos(
            problem.matrix,
            problem.rhs(),
            damped_abs_inv(0.0),
            rtol=1e-12,
            maxiter=30,
            throw=True,
        )


def test_nonfinite_rhs_is_reported() -> None:
    b = np.ones(3)
    b[1] = np.nan
    result = krylov.funm_lanczos(np.eye(3), b, np.sqrt)
    assert result.status is hs.Status.NONFINITE


def test_validation_errors() -> None:
    A, b = np.eye(3), np.ones(3)
    with pytest.raises(TypeError, match="callable"):
        krylov.funm_lanczos(A, b, 3.0)
    with pytest.raises(ValueError, match="memory"):
        krylov.funm_lanczos(A, b, np.sqrt, memory="disk")
    with pytest.raises(ValueError, match="two-pass"):
        krylov.funm_lanczos(A, b, np.sqrt, memory="two-pass", reorthogonalize="full")
    with pytest.raises(ValueError, match="rtol"):
        krylov.funm_lanczos(A, b, np.sqrt, rtol=-1.0)
    with pytest.raises(TypeError):
        krylov.funm_lanczos(A, b, np.sqrt, 1e-3)  # tolerances are keyword-only
    with pytest.raises(ValueError, match="shape"):
        krylov.funm_lanczos(A, b, lambda t: np.ones(len(t) + 1))
    with pytest.raises(ValueError, match="maxiter"):
        krylov.funm_lanczos(A, b, np.sqrt, maxiter=0)


def test_exhausted_krylov_spaces_stay_accurate_by_default() -> None:
    # Small random indefinite matrices run to m = n (the Krylov space is the whole space).
    # With partial reorthogonalisation 21 of 400 such runs claimed SUCCESS at rtol 1e-10 with
    # errors above 3 rtol; the default reorthogonalises fully for n <= 1000.
    rng = np.random.default_rng(0)
    rtol = 1e-10
    for _ in range(120):
        n = int(rng.integers(2, 61))
        kappa = 10 ** rng.uniform(0.5, 3)
        eigenvalues = np.logspace(0, -np.log10(kappa), n) * np.where(rng.random(n) < 0.5, -1, 1)
        problem = SpectralProblem("random", eigenvalues, seed=int(rng.integers(1 << 30)))
        b = problem.rhs()
        reference = problem.apply_function(lambda t: 1 / np.abs(t), b)
        result = krylov.funm_lanczos(problem.matrix, b, lambda t: 1 / np.abs(t), rtol=rtol)
        assert result.info["reorthogonalize"] == "full"
        assert result.converged, result
        assert relative_error(result.x, reference) <= 3 * rtol, (n, kappa)
