"""The front end: abs_inv, inv_sqrt, sqrt, sign, funm, solve and their method dispatch."""

from __future__ import annotations

import numpy as np
import pytest

import hvpseries as hs
from tests.problems import PROBLEMS
from tests.problems import matrix_with_eigenvalues as _matrix


def rel(x, y):
    return np.linalg.norm(x - y) / np.linalg.norm(y)


@pytest.mark.parametrize("method", ["auto", "lanczos", "dense"])
@pytest.mark.parametrize("columns", [None, 2])
def test_abs_inv_matches_reference(backend, method, columns) -> None:
    problem = PROBLEMS["indefinite"]
    b = problem.rhs(columns)
    rtol = 1e-9 if backend.dtype_name == "float64" else 1e-4
    result = hs.abs_inv(
        backend.asarray(problem.matrix), backend.asarray(b), damping=0.1, method=method, rtol=rtol
    )
    assert result.converged
    expected = "dense" if method == "auto" else method
    assert result.info["method"] == expected
    reference = problem.apply_function(lambda t: 1 / (np.abs(t) + 0.1), b)
    assert rel(backend.to_numpy(result.x), reference) <= (1e-7 if rtol < 1e-6 else 5e-3)


def test_auto_takes_lanczos_for_operators() -> None:
    problem = PROBLEMS["indefinite"]
    A = hs.FunctionOperator(lambda x: problem.matrix @ x, (problem.n, problem.n), symmetric=True)
    result = hs.abs_inv(A, problem.rhs(), rtol=1e-8)
    assert result.info["method"] == "lanczos"
    assert rel(result.x, problem.apply_function(lambda t: 1 / np.abs(t), problem.rhs())) < 1e-6


@pytest.mark.parametrize("method", ["rational", "series", "chebyshev"])
def test_abs_inv_dispatches_to_other_methods(method) -> None:
    problem = PROBLEMS["spd"]  # definite: every method applies (Chebyshev needs smoothness)
    b = problem.rhs()
    A = hs.aslinearoperator(problem.matrix, psd=True)
    result = hs.abs_inv(A, b, damping=0.5, method=method, rtol=1e-6, maxiter=20000)
    assert result.info["method"] == method
    reference = problem.apply_function(lambda t: 1 / (np.abs(t) + 0.5), b)
    assert result.converged, result
    assert rel(result.x, reference) < 1e-4


def test_quasi_damped_variant() -> None:
    problem = PROBLEMS["indefinite"]
    b = problem.rhs()
    result = hs.abs_inv(
        problem.matrix, b, damping=0.2, variant="quasi-damped", method="lanczos", rtol=1e-10
    )
    reference = problem.apply_function(lambda t: 1 / np.sqrt(t * t + 0.2), b)
    assert rel(result.x, reference) < 1e-8


@pytest.mark.parametrize("method", ["lanczos", "dense"])
def test_roots_sign_funm(backend, method) -> None:
    spd = PROBLEMS["spd"]
    A = backend.asarray(spd.matrix)
    b = backend.asarray(spd.rhs())
    tol = 1e-7 if backend.dtype_name == "float64" else 5e-3
    rtol = 1e-10 if backend.dtype_name == "float64" else 1e-5
    x = hs.inv_sqrt(A, b, method=method, rtol=rtol).x
    assert rel(backend.to_numpy(x), spd.apply_function(lambda t: t**-0.5, spd.rhs())) < tol
    x = hs.sqrt(A, b, method=method, rtol=rtol).x
    assert rel(backend.to_numpy(x), spd.apply_function(np.sqrt, spd.rhs())) < tol
    x = hs.funm(A, b, np.exp, method=method, rtol=rtol).x
    assert rel(backend.to_numpy(x), spd.apply_function(np.exp, spd.rhs())) < tol
    indefinite = PROBLEMS["indefinite"]
    result = hs.sign(
        backend.asarray(indefinite.matrix),
        backend.asarray(indefinite.rhs()),
        method=method,
        rtol=rtol,
    )
    assert (
        rel(backend.to_numpy(result.x), indefinite.apply_function(np.sign, indefinite.rhs())) < tol
    )


def test_inv_sqrt_reports_indefinite() -> None:
    problem = PROBLEMS["indefinite"]
    result = hs.inv_sqrt(problem.matrix, problem.rhs(), method="lanczos")
    assert result.status is hs.Status.INDEFINITE
    with pytest.raises(ValueError, match="psd"):
        hs.inv_sqrt(hs.aslinearoperator(problem.matrix, psd=False), problem.rhs())


@pytest.mark.parametrize("psd", [True, None])
def test_solve_picks_cg_or_minres(psd) -> None:
    problem = PROBLEMS["spd"]
    A = hs.FunctionOperator(
        lambda x: problem.matrix @ x, (problem.n, problem.n), psd=psd, symmetric=True
    )
    result = hs.solve(A, problem.rhs(), rtol=1e-10)
    assert result.info["method"] == ("cg" if psd else "minres")
    reference = np.linalg.solve(problem.matrix, problem.rhs())
    assert rel(result.x, reference) < 1e-7
    dense = hs.solve(problem.matrix, problem.rhs())
    assert dense.info["method"] == "dense" and rel(dense.x, reference) < 1e-10


def test_validation() -> None:
    A, b = np.eye(3), np.ones(3)
    with pytest.raises(ValueError, match="method"):
        hs.abs_inv(A, b, method="magic")
    with pytest.raises(ValueError, match="damping"):
        hs.abs_inv(A, b, damping=-1.0)
    with pytest.raises(TypeError, match="damping"):
        hs.abs_inv(A, b, damping="big")
    with pytest.raises(ValueError, match="variant"):
        hs.abs_inv(A, b, variant="other")
    with pytest.raises(ValueError, match="rtol"):
        hs.abs_inv(A, b, rtol=-1.0)
    with pytest.raises(TypeError):
        hs.abs_inv(A, b, 0.1)
    with pytest.raises(ValueError, match="shape"):
        hs.abs_inv(A, np.ones(4))
    with pytest.raises(ValueError, match="symmetric"):
        hs.abs_inv(hs.aslinearoperator(A, symmetric=False), b)
    with pytest.raises(TypeError, match="callable"):
        hs.funm(A, b, "exp")
    with pytest.raises(TypeError, match="callback"):
        hs.sign(A, b, callback=3)
    bad = b.copy()
    bad[0] = np.inf
    assert hs.abs_inv(A, bad).status is hs.Status.NONFINITE
    with pytest.raises(hs.ConvergenceError):
        hs.abs_inv(A, bad, throw=True)


def test_dense_estimate_of_a_piecewise_constant_function_sees_the_eigenvector_rounding():
    """sign(A) b by eigh: f' = 0 away from zero, yet the eigenvectors carry rounding.

    The estimate (how f moves when each eigenvalue moves) was exactly 0, so float32 reported
    SUCCESS at rtol 1e-10 with a true error of 2e-7 (a fuzz case).
    """
    rng = np.random.default_rng(0)
    eigenvalues = np.geomspace(1.0, 1e3, 50)
    eigenvalues[0] = -1.0
    Q, _ = np.linalg.qr(rng.standard_normal((50, 50)))
    A, b = (Q * eigenvalues) @ Q.T, rng.standard_normal(50)
    exact = Q @ (np.sign(eigenvalues) * (Q.T @ b))
    single = hs.sign(A.astype(np.float32), b.astype(np.float32), rtol=1e-10, method="dense")
    error = np.linalg.norm(np.asarray(single.x, dtype=np.float64) - exact)
    assert single.status is hs.Status.STAGNATED
    assert single.error_estimate >= error
    double = hs.sign(A, b, rtol=1e-10, method="dense")
    assert double.converged
    assert np.linalg.norm(double.x - exact) <= 10 * double.error_estimate


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


def test_chebyshev_for_a_function_singular_on_the_enclosure_is_a_clear_error() -> None:
    A, _ = _matrix(np.logspace(-1, 0, 50))
    with pytest.raises(ValueError, match="method='chebyshev' needs the function finite"):
        hs.inv_sqrt(hs.aslinearoperator(A, psd=True), np.ones(50), method="chebyshev")


LANCZOS_MEMORY_CALLS = [
    ("abs_inv", lambda a, b, **o: hs.abs_inv(a, b, damping=0.1, rtol=1e-10, **o)),
    ("funm", lambda a, b, **o: hs.funm(a, b, lambda t: np.exp(-t), rtol=1e-10, **o)),
    ("sign", lambda a, b, **o: hs.sign(a, b, rtol=1e-10, **o)),
    ("inv_sqrt", lambda a, b, **o: hs.inv_sqrt(a @ a + 0.25 * np.eye(len(a)), b, rtol=1e-10, **o)),
    ("sqrt", lambda a, b, **o: hs.sqrt(a @ a + 0.25 * np.eye(len(a)), b, rtol=1e-10, **o)),
]


@pytest.mark.parametrize(
    ("name", "call"), LANCZOS_MEMORY_CALLS, ids=[c[0] for c in LANCZOS_MEMORY_CALLS]
)
def test_two_pass_lanczos_through_the_front_end(name, call) -> None:
    # A small dense matrix: "auto" would take the dense path; the memory option selects Lanczos.
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.standard_normal((120, 120)))
    a = (q * np.linspace(-2.0, 3.0, 120)) @ q.T
    a = 0.5 * (a + a.T)
    b = rng.standard_normal(120)
    dense = call(a, b)
    stored = call(a, b, reorthogonalize="none")
    two_pass = call(a, b, memory="two-pass")
    assert dense.info["method"] == "dense"
    assert stored.info["method"] == two_pass.info["method"] == "lanczos"
    assert two_pass.info["memory"] == "two-pass" and stored.info["reorthogonalize"] == "none"
    assert two_pass.converged and stored.converged
    scale = np.linalg.norm(dense.x)
    np.testing.assert_allclose(two_pass.x, dense.x, atol=1e-8 * scale)
    np.testing.assert_allclose(two_pass.x, stored.x, atol=1e-9 * scale)
    assert two_pass.n_matvec > stored.n_matvec


@pytest.mark.parametrize("method", ["chebyshev", "series", "dense"])
def test_lanczos_memory_options_are_refused_for_other_methods(method) -> None:
    a = np.diag(np.linspace(0.5, 2.0, 30))
    with pytest.raises(ValueError, match="options of method='lanczos'"):
        hs.abs_inv(a, np.ones(30), method=method, memory="two-pass")
    with pytest.raises(ValueError, match="options of method='lanczos'"):
        hs.inv_sqrt(a, np.ones(30), method=method, reorthogonalize="none")


def test_bad_lanczos_memory_option_is_refused() -> None:
    with pytest.raises(ValueError, match="memory"):
        hs.abs_inv(np.diag([1.0, 2.0, 3.0]), np.ones(3), memory="disk")
