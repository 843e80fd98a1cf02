"""Regression tests for problems an outside review found in the Krylov solvers and front end."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

import hvpseries as hs
from hvpseries import krylov
from hvpseries._app._cli import main
from tests.problems import random_orthogonal


def _matrix(eigenvalues, seed=0):
    q = random_orthogonal(len(eigenvalues), seed)
    a = (q * np.asarray(eigenvalues)) @ q.T
    return (a + a.T) / 2, q


@pytest.mark.parametrize(
    "call",
    [
        lambda A, b: hs.abs_inv(A, b),
        lambda A, b: hs.solve(A, b),
        lambda A, b: hs.sign(A, b),
    ],
    ids=["abs_inv", "solve", "sign"],
)
def test_dense_path_does_not_claim_success_on_a_singular_matrix(call) -> None:
    A, _ = _matrix([-4.0, 0.0, 1.0, 2.0, 3.0])
    result = call(A, np.ones(5))
    assert result.info["method"] == "dense"
    assert result.status is hs.Status.STAGNATED
    assert result.error_estimate > 1e-6 * np.linalg.norm(result.x)


def test_dense_path_estimate_is_small_where_the_answer_is_accurate() -> None:
    A, q = _matrix([-4.0, 0.5, 1.0, 2.0, 3.0])
    b = np.ones(5)
    result = hs.abs_inv(A, b, rtol=1e-10)
    reference = q @ ((q.T @ b) / np.abs([-4.0, 0.5, 1.0, 2.0, 3.0]))
    assert result.status is hs.Status.SUCCESS
    true_error = np.linalg.norm(result.x - reference)
    assert result.error_estimate < 1e-10 * np.linalg.norm(reference)
    assert true_error <= 10 * result.error_estimate + 1e-14


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


def test_spectral_bounds_of_a_nan_operator_is_an_error() -> None:
    A = hs.FunctionOperator(lambda v: v * np.nan, (5, 5), symmetric=True)
    with pytest.raises(ValueError, match="NaN or infinite"):
        hs.spectral_bounds(A)


def test_chebyshev_for_a_function_singular_on_the_enclosure_is_a_clear_error() -> None:
    A, _ = _matrix(np.logspace(-1, 0, 50))
    with pytest.raises(ValueError, match="method='chebyshev' needs the function finite"):
        hs.inv_sqrt(hs.aslinearoperator(A, psd=True), np.ones(50), method="chebyshev")


@pytest.fixture
def small_file(tmp_path):
    A, _ = _matrix([-4.0, 0.5, 1.0, 2.0, 3.0])
    path = tmp_path / "a.mtx"
    scipy.io.mmwrite(path, sp.coo_matrix(A), symmetry="symmetric")
    return path


@pytest.mark.parametrize(
    ("rhs", "match"),
    [(np.array([1.0, np.nan, 0, 0, 0]), "NaN or infinite"), (np.ones(5) * 1j, "complex")],
    ids=["nan", "complex"],
)
def test_cli_bad_right_hand_sides_exit_2(small_file, tmp_path, capsys, rhs, match) -> None:
    path = tmp_path / "b.npy"
    np.save(path, rhs)
    code = main(["solve", str(small_file), "--rhs", str(path), "--no-progress"])
    assert code == 2
    assert match in capsys.readouterr().err


def test_cli_library_errors_exit_2_and_output_path_is_reported(small_file, tmp_path, capsys):
    out = tmp_path / "x"
    code = main(["solve", str(small_file), "--rhs", "ones", "--out", str(out), "--no-progress"])
    assert code == 0
    assert f"{out}.npy" in capsys.readouterr().out
    assert (tmp_path / "x.npy").exists()
    code = main(
        [
            "solve",
            str(small_file),
            "--rhs",
            "ones",
            "--function",
            "inv-sqrt",
            "--method",
            "chebyshev",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert code == 2
    assert "chebyshev" in capsys.readouterr().err


@pytest.mark.parametrize("solver", [krylov.cg, krylov.minres])
def test_zero_rhs_with_a_guess_returns_zero(backend, solver) -> None:
    # SciPy's answer: A x = 0 is solved by x = 0 whatever x0 (it used to end MAX_ITERATIONS
    # for MINRES, and CG iterated 30 matvecs towards it).
    a = backend.asarray(np.diag([1.0, 2.0, 3.0]))
    b = backend.asarray(np.stack([np.zeros(3), np.ones(3)], axis=1))
    guess = np.ones((3, 2))
    x0 = backend.asarray(guess)
    result = solver(a, b, x0=x0, rtol=backend.rtol)
    assert result.status is hs.Status.SUCCESS
    x = backend.to_numpy(result.x)
    assert np.all(x[:, 0] == 0.0)
    np.testing.assert_allclose(x[:, 1], [1.0, 0.5, 1 / 3], rtol=10 * backend.rtol)
    np.testing.assert_array_equal(backend.to_numpy(x0), guess)


@pytest.mark.parametrize("shift", [float("nan"), float("inf"), complex(0.0, float("nan"))])
def test_non_finite_shift_is_refused(shift) -> None:
    with pytest.raises(ValueError, match="shift must be finite"):
        hs.aslinearoperator(np.eye(2)).shift(shift)
