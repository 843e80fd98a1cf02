"""krylov.lanczos: the decomposition, reorthogonalisation strategies and breakdown."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import hvpseries as hs
from hvpseries import krylov
from tests.problems import PROBLEMS


@pytest.mark.parametrize("reorthogonalize", ["full", "partial", "none"])
def test_decomposition_satisfies_lanczos_relation(backend, reorthogonalize) -> None:
    problem = PROBLEMS["indefinite"]
    A = backend.asarray(problem.matrix)
    v = backend.asarray(problem.rhs())
    m = 15
    result = krylov.lanczos(A, v, m, reorthogonalize=reorthogonalize)
    assert result.num_steps == m and result.n_matvec == m and not result.breakdown
    Q = backend.to_numpy(result.basis)
    r = backend.to_numpy(result.residual)
    T = result.tridiagonal
    tolerance = 50 * backend.eps * np.abs(problem.eigenvalues).max()
    residual = problem.matrix @ Q - Q @ T
    residual[:, -1] -= r
    assert np.abs(residual).max() <= tolerance * 10
    assert np.abs(Q.T @ Q - np.eye(m)).max() <= 1e3 * backend.eps
    np.testing.assert_allclose(
        Q[:, 0], problem.rhs() / np.linalg.norm(problem.rhs()), atol=tolerance
    )
    assert np.linalg.norm(r) == pytest.approx(result.beta[-1], rel=1e-4)


def test_breakdown_on_invariant_subspace_gives_exact_eigenvalues() -> None:
    problem = PROBLEMS["spd"]
    q = problem.eigenvectors
    v = q[:, [3, 10, 20]] @ np.array([1.0, -2.0, 0.5])
    result = krylov.lanczos(problem.matrix, v, 30)
    assert result.breakdown
    assert result.num_steps == 3
    np.testing.assert_allclose(
        np.sort(result.ritz_values()), np.sort(problem.eigenvalues[[3, 10, 20]]), rtol=1e-12
    )
    assert float(np.linalg.norm(result.residual)) == 0.0


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_partial_reorthogonalization_keeps_semi_orthogonality(name) -> None:
    problem = PROBLEMS[name]
    rng = np.random.default_rng(5)
    # A larger problem where plain Lanczos loses orthogonality quickly.
    eigenvalues = np.concatenate([problem.eigenvalues, rng.uniform(-1, 1, 160)])
    from tests.problems import SpectralProblem

    big = SpectralProblem("big", eigenvalues, seed=7)
    m = 120
    plain = krylov.lanczos(big.matrix, big.rhs(), m, reorthogonalize="none")
    partial = krylov.lanczos(big.matrix, big.rhs(), m, reorthogonalize="partial")
    full = krylov.lanczos(big.matrix, big.rhs(), m, reorthogonalize="full")
    loss = {
        key: np.abs(r.basis.T @ r.basis - np.eye(r.num_steps)).max()
        for key, r in (("none", plain), ("partial", partial), ("full", full))
    }
    assert loss["full"] < 1e-12
    assert loss["partial"] < 1e-6  # semi-orthogonal: about sqrt(eps)
    assert partial.n_reorthogonalizations < full.n_reorthogonalizations
    assert loss["none"] > loss["partial"]  # the test can tell the strategies apart


def test_validation_errors() -> None:
    A = np.diag([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="nonzero"):
        krylov.lanczos(A, np.zeros(3), 2)
    with pytest.raises(ValueError, match="reorthogonalize"):
        krylov.lanczos(A, np.ones(3), 2, reorthogonalize="sometimes")
    with pytest.raises(TypeError, match="num_matvecs"):
        krylov.lanczos(A, np.ones(3), 2.5)
    with pytest.raises(ValueError, match="single starting vector"):
        krylov.lanczos(A, np.ones((3, 2)), 2)
    with pytest.raises(ValueError, match="symmetric"):
        krylov.lanczos(hs.aslinearoperator(A, symmetric=False), np.ones(3), 2)
    with pytest.raises(TypeError, match="complex"):
        krylov.lanczos(A.astype(complex), np.ones(3, dtype=complex), 2)
    with pytest.raises(TypeError, match="Mismatched"):
        import torch

        krylov.lanczos(A, torch.ones(3, dtype=torch.float64), 2)


def test_repr_and_counting() -> None:
    A = hs.CountingOperator(hs.aslinearoperator(np.diag(np.arange(1.0, 11.0))))
    result = krylov.lanczos(A, np.ones(10), 4)
    assert A.n_matvec == result.n_matvec == 4
    assert "num_steps=4" in repr(result)


def test_lanczos_differentiates_through_the_basis() -> None:
    # The basis buffer is filled in place only where autograd does not watch the vectors.
    torch = pytest.importorskip("torch")
    operator = hs.aslinearoperator(torch.diag(torch.linspace(-1.0, 2.0, 60, dtype=torch.float64)))
    b = torch.ones(60, dtype=torch.float64, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # float() of a tensor that requires grad
        krylov.lanczos(operator, b, 20).basis.sum().backward()
    assert b.grad is not None and bool(torch.all(torch.isfinite(b.grad)))


def test_array_api_strict_overflow_in_a_norm_is_silent() -> None:
    xps = pytest.importorskip("array_api_strict")
    operator = hs.aslinearoperator(xps.asarray(np.diag(np.linspace(1.0, 2.0, 50)) * 1e160))
    decomposition = krylov.lanczos(operator, xps.asarray(np.ones(50)), 10)
    assert decomposition.num_steps == 10


def test_basis_falls_back_to_a_growing_block_when_a_whole_one_is_refused(monkeypatch):
    # A block of 64 host vectors larger than the machine's memory is refused outright under
    # Linux's default overcommit rule; the basis then starts small and grows.
    from hvpseries.krylov import _lanczos

    real_empty = np.empty

    def refusing_empty(shape, *args, **kwargs):
        if isinstance(shape, tuple) and shape[0] == _lanczos._CHUNK:
            message = "Unable to allocate a whole block"
            raise MemoryError(message)
        return real_empty(shape, *args, **kwargs)

    monkeypatch.setattr(np, "empty", refusing_empty)
    A = np.diag(np.linspace(1.0, 2.0, 100))
    b = np.ones(100)
    result = krylov.funm_lanczos(A, b, np.sqrt, rtol=1e-10)
    assert result.status is hs.Status.SUCCESS
    np.testing.assert_allclose(result.x, np.sqrt(np.diag(A)) * b, rtol=1e-9)
