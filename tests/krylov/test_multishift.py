import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import hvpseries as hs
from hvpseries import krylov
from hvpseries.krylov import cg
from tests.problems import PROBLEMS

SHIFTS = [0.0, 1e-3, 0.1, 1.0, 30.0]


@pytest.mark.parametrize("columns", [None, 2])
def test_multishift_matches_dense_solves(backend, columns):
    problem = PROBLEMS["spd"]
    b = problem.rhs(columns)
    rtol = 1e-10 if backend.dtype_name == "float64" else 1e-4
    result = krylov.cg_multishift(
        backend.asarray(problem.matrix), backend.asarray(b), SHIFTS, rtol=rtol
    )
    assert result.status is hs.Status.SUCCESS
    x = backend.to_numpy(result.x)
    assert x.shape == (len(SHIFTS), *b.shape)
    for j, shift in enumerate(SHIFTS):
        reference = problem.apply_function(lambda t, s=shift: 1 / (t + s), b)
        assert np.linalg.norm(x[j] - reference) <= 100 * rtol * np.linalg.norm(reference)
    assert result.residual_norm.shape == (len(SHIFTS),) + (() if columns is None else (2,))


def test_multishift_equals_separate_cg_solves():
    problem = PROBLEMS["spd"]
    b = problem.rhs()
    together = krylov.cg_multishift(problem.matrix, b, SHIFTS, rtol=1e-9)
    for j, shift in enumerate(SHIFTS):
        alone = cg(problem.matrix + shift * np.eye(40), b, rtol=1e-9)
        np.testing.assert_allclose(together.x[j], alone.x, rtol=1e-6, atol=1e-12)


def test_multishift_uses_one_matvec_per_iteration():
    problem = PROBLEMS["spd"]
    A = hs.CountingOperator(hs.aslinearoperator(problem.matrix))
    result = krylov.cg_multishift(A, problem.rhs(), SHIFTS, rtol=1e-8)
    # iterations, plus one true-residual check per shift at the end
    # two more: the symmetry probe of an untagged matrix-free operator
    assert result.n_matvec == A.n_matvec == result.n_iter + len(SHIFTS) + 2
    alone = cg(problem.matrix, problem.rhs(), rtol=1e-8)
    assert result.n_iter <= alone.n_iter + 1


def test_multishift_on_psd_singular_operator_with_positive_shifts():
    problem = PROBLEMS["with_zero"]
    A = problem.matrix @ problem.matrix  # psd, singular
    b = problem.rhs()
    shifts = [0.01, 0.5, 2.0]
    result = krylov.cg_multishift(A, b, shifts, rtol=1e-10)
    assert result.converged
    for j, s in enumerate(shifts):
        expected = np.linalg.solve(A + s * np.eye(problem.n), b)
        kappa = (problem.eigenvalues.max() ** 2 + s) / s
        assert np.linalg.norm(result.x[j] - expected) <= kappa * 1e-10 * np.linalg.norm(expected)


def test_multishift_reports_indefinite_base():
    problem = PROBLEMS["indefinite"]
    result = krylov.cg_multishift(problem.matrix, problem.rhs(), [0.0, 5.0])
    assert result.status is hs.Status.INDEFINITE


def test_multishift_maxiter_and_callback():
    problem = PROBLEMS["spd"]
    seen = []
    result = krylov.cg_multishift(
        problem.matrix,
        problem.rhs(),
        [0.0, 1.0],
        maxiter=1,
        callback=lambda xk: seen.append(xk.shape),
    )
    assert seen == [(2, 40)]
    assert result.status is hs.Status.MAX_ITERATIONS
    assert result.info["shift_status"][0] is hs.Status.MAX_ITERATIONS


@pytest.mark.parametrize("shifts", [[], [np.nan], "abc"])
def test_multishift_rejects_bad_shifts(shifts):
    with pytest.raises((TypeError, ValueError)):
        krylov.cg_multishift(np.eye(3), np.ones(3), shifts)


@given(st.lists(st.floats(0.0, 10.0), min_size=1, max_size=4))
def test_multishift_any_nonnegative_shifts(shifts):
    eigenvalues = np.array([0.5, 1.0, 2.0, 3.0, 7.0])
    A = np.diag(eigenvalues)
    b = np.ones(5)
    result = krylov.cg_multishift(A, b, shifts, rtol=1e-12)
    assert result.converged
    for j, s in enumerate(shifts):
        np.testing.assert_allclose(result.x[j], 1 / (eigenvalues + s), rtol=1e-9)
