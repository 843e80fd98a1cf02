import warnings

import numpy as np
import pytest
import scipy.sparse.linalg as spla

import hvpseries as hs
from hvpseries import krylov
from tests.problems import PROBLEMS


@pytest.mark.parametrize("name", ["spd", "indefinite", "clustered"])
@pytest.mark.parametrize("columns", [None, 2])
def test_minres_matches_dense_solve(backend, name, columns):
    problem = PROBLEMS[name]
    b = problem.rhs(columns)
    rtol = 1e-10 if backend.dtype_name == "float64" else 1e-4
    result = krylov.minres(backend.asarray(problem.matrix), backend.asarray(b), rtol=rtol)
    assert result.status is hs.Status.SUCCESS
    x = backend.to_numpy(result.x)
    norms = np.linalg.norm(problem.matrix @ x - b, axis=0)
    assert np.all(norms <= rtol * np.linalg.norm(b, axis=0) * (1.01 if rtol < 1e-6 else 1.5))
    reference = problem.apply_function(lambda t: 1 / t, b)
    assert np.linalg.norm(x - reference) <= 100 * rtol * np.linalg.norm(reference)


def test_minres_shift_follows_scipy_convention():
    problem = PROBLEMS["indefinite"]
    b = problem.rhs()
    result = krylov.minres(problem.matrix, b, shift=0.05, rtol=1e-10)
    expected = np.linalg.solve(problem.matrix - 0.05 * np.eye(40), b)
    np.testing.assert_allclose(result.x, expected, rtol=1e-7)
    theirs, _info = spla.minres(problem.matrix, b, shift=0.05, rtol=1e-12)
    np.testing.assert_allclose(result.x, theirs, rtol=1e-7)


def test_minres_agrees_with_scipy_where_scipy_is_right():
    problem = PROBLEMS["indefinite"]
    b = problem.rhs()
    ours = krylov.minres(problem.matrix, b, rtol=1e-10)
    theirs, info = spla.minres(problem.matrix, b, rtol=1e-12)
    assert info == 0
    np.testing.assert_allclose(ours.x, theirs, rtol=1e-7)


def test_minres_checks_the_true_residual_where_scipy_does_not():
    # a log-spaced indefinite spectrum: SciPy stops on ||r|| <= rtol ||A|| ||x|| and claims
    # success far above the documented test; ours meets ||b - A x|| <= rtol ||b||
    rng = np.random.default_rng(0)
    n = 200
    eigenvalues = np.logspace(-2, 0, n) * np.where(rng.random(n) < 0.5, -1, 1)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = (q * eigenvalues) @ q.T
    A = (A + A.T) / 2
    b = rng.standard_normal(n)
    theirs, info = spla.minres(A, b, rtol=1e-8)
    scipy_residual = np.linalg.norm(b - A @ theirs) / np.linalg.norm(b)
    ours = krylov.minres(A, b, rtol=1e-8)
    our_residual = np.linalg.norm(b - A @ ours.x) / np.linalg.norm(b)
    assert info == 0 and scipy_residual > 1e-6  # SciPy's claim is far off
    assert ours.converged and our_residual <= 1e-8
    assert ours.residual_norm == pytest.approx(our_residual * np.linalg.norm(b), rel=1e-3)


def test_minres_maxiter_one_gives_one_callback_and_no_convergence():
    problem = PROBLEMS["indefinite"]
    calls = []
    result = krylov.minres(problem.matrix, problem.rhs(), maxiter=1, callback=calls.append)
    assert len(calls) == 1
    assert result.status is hs.Status.MAX_ITERATIONS
    np.testing.assert_allclose(
        result.residual_norm, np.linalg.norm(problem.rhs() - problem.matrix @ result.x)
    )


def test_minres_does_not_touch_x0(backend):
    problem = PROBLEMS["indefinite"]
    x0 = backend.asarray(np.ones(40))
    result = krylov.minres(
        backend.asarray(problem.matrix), backend.asarray(problem.rhs()), x0, rtol=1e-3
    )
    assert result.converged
    np.testing.assert_array_equal(backend.to_numpy(x0), np.ones(40))


def test_minres_zero_rhs():
    result = krylov.minres(PROBLEMS["indefinite"].matrix, np.zeros(40))
    assert result.converged and result.n_matvec == 0 and not np.any(result.x)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"rtol": -1.0}, ValueError),
        ({"atol": np.inf}, ValueError),
        ({"rtol": None}, TypeError),
        ({"maxiter": 1.5}, TypeError),
        ({"shift": np.nan}, ValueError),
        ({"shift": "1"}, TypeError),
    ],
)
def test_minres_rejects_invalid_controls(kwargs, error):
    problem = PROBLEMS["indefinite"]
    with pytest.raises(error):
        krylov.minres(problem.matrix, problem.rhs(), **kwargs)


def test_minres_tolerance_is_keyword_only():
    problem = PROBLEMS["indefinite"]
    with pytest.raises(TypeError):
        krylov.minres(problem.matrix, problem.rhs(), None, 0.0, 1e-5)


def test_minres_preconditioned_indefinite():
    problem = PROBLEMS["indefinite"]
    b = problem.rhs()
    M = np.diag(1 / np.abs(np.diag(problem.matrix)))
    result = krylov.minres(problem.matrix, b, M=M, rtol=1e-10)
    assert result.converged
    np.testing.assert_allclose(problem.matrix @ result.x, b, atol=1e-8 * np.linalg.norm(b))


def test_minres_singular_inconsistent_system_stops_honestly():
    problem = PROBLEMS["with_zero"]
    b = problem.rhs()
    result = krylov.minres(problem.matrix, b, rtol=1e-10)
    assert result.status is hs.Status.STAGNATED
    # a least-squares solution: the residual is the component of b in the null space
    null = problem.eigenvectors[:, problem.eigenvalues == 0]
    least_squares = np.linalg.norm(null.T @ b)
    assert result.residual_norm == pytest.approx(least_squares, rel=1e-3)


def test_minres_counts_every_matvec():
    problem = PROBLEMS["indefinite"]
    A = hs.CountingOperator(hs.aslinearoperator(problem.matrix))
    result = krylov.minres(A, problem.rhs(2), rtol=1e-8)
    assert result.converged and result.n_matvec == A.n_matvec


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


@pytest.mark.parametrize("columns", [None, 3])
@pytest.mark.parametrize(("solver", "name"), [(krylov.cg, "spd"), (krylov.minres, "indefinite")])
def test_in_place_updates_leave_b_and_the_callbacks_iterates_alone(backend, solver, name, columns):
    problem = PROBLEMS[name]
    b = backend.asarray(problem.rhs(columns))
    saved = backend.to_numpy(b).copy()
    iterates = []
    rtol = 1e-8 if backend.dtype_name == "float64" else 1e-4
    result = solver(backend.asarray(problem.matrix), b, rtol=rtol, callback=iterates.append)
    assert result.converged and len(iterates) == result.n_iter >= 3
    np.testing.assert_array_equal(backend.to_numpy(b), saved)
    # each iterate is its own array: the later in-place updates did not reach the stored ones
    first, last = backend.to_numpy(iterates[0]), backend.to_numpy(iterates[-1])
    assert not np.allclose(first, last)
    np.testing.assert_allclose(last, backend.to_numpy(result.x), rtol=1e-12, atol=0)


@pytest.mark.parametrize(("solver", "lowest"), [(krylov.cg, 1.0), (krylov.minres, -1.0)])
def test_backward_passes_through_cg_and_minres(solver, lowest):
    torch = pytest.importorskip("torch")
    matrix = torch.diag(torch.tensor([lowest, 2.0, 4.0, 8.0], dtype=torch.float64))
    b = torch.ones(4, dtype=torch.float64, requires_grad=True)
    operator = hs.aslinearoperator(matrix, symmetric=True, psd=lowest > 0 or None)
    solver(operator, b, rtol=1e-12).x.sum().backward()  # in place would break the graph
    expected = torch.tensor([1.0 / lowest, 0.5, 0.25, 0.125], dtype=torch.float64)
    torch.testing.assert_close(b.grad, expected)


@pytest.mark.parametrize(("solver", "lowest"), [(krylov.cg, 1.0), (krylov.minres, -1.0)])
def test_backward_reaches_an_operator_that_requires_grad(solver, lowest):
    torch = pytest.importorskip("torch")
    diagonal = torch.tensor([lowest, 2.0, 4.0, 8.0], dtype=torch.float64)
    matrix = torch.diag(diagonal).requires_grad_()
    b = torch.ones(4, dtype=torch.float64)  # b does not require grad: A does
    operator = hs.aslinearoperator(matrix, symmetric=True, psd=lowest > 0 or None)
    x = solver(operator, b, rtol=1e-12).x
    x.sum().backward()  # d(1^T A^-1 b)/dA = -(A^-1 1) (A^-1 b)^T
    expected = -torch.outer(1 / diagonal, 1 / diagonal)
    torch.testing.assert_close(torch.diagonal(matrix.grad), torch.diagonal(expected))


@pytest.mark.parametrize("solver", [krylov.cg, krylov.minres])
def test_backward_through_a_preconditioner_that_requires_grad(solver):
    torch = pytest.importorskip("torch")
    diagonal = torch.tensor([1.0, 2.0, 4.0, 8.0], dtype=torch.float64)
    scale = (1 / diagonal).requires_grad_()
    M = hs.FunctionOperator(
        lambda v: scale * v,
        (4, 4),
        like=diagonal,
        matmat=lambda X: scale[:, None] * X,
        symmetric=True,
        psd=True,
    )
    A = hs.aslinearoperator(torch.diag(diagonal), symmetric=True, psd=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no copy of a tensor autograd records
        result = solver(A, torch.ones(4, dtype=torch.float64), M=M, rtol=1e-12)
        result.x.sum().backward()
    torch.testing.assert_close(result.x, 1 / diagonal)
    # the solution A^-1 b does not depend on M: its gradient vanishes up to rounding
    assert float(torch.max(torch.abs(scale.grad))) < 1e-10
