"""Regressions for outcomes that used to be silent or raw (the trust audit's part 4)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import hvpseries as hs


def _readme_problem() -> tuple[hs.LinearOperator, np.ndarray, np.ndarray]:
    """The README's example: (|L - I/2| + 0.1 I)^-1 b, with the exact answer."""
    n = 1000
    laplacian = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(n, n)).tocsr()
    operator = hs.aslinearoperator(laplacian, symmetric=True).shift(-0.5)
    b = np.ones(n)
    values, vectors = np.linalg.eigh(laplacian.toarray() - 0.5 * np.eye(n))
    exact = vectors @ ((vectors.T @ b) / (np.abs(values) + 0.1))
    return operator, b, exact


def test_fixed_budget_is_completed_not_converged() -> None:
    operator, b, exact = _readme_problem()
    result = hs.series.abs_inv(operator, b, damping=0.1, num_terms=20, paper=True)
    error = np.linalg.norm(result.x - exact) / np.linalg.norm(exact)
    assert error > 0.1  # 20 terms are far from enough here: nothing may call this converged
    assert result.status is hs.Status.COMPLETED
    assert not result.converged
    assert result.usable
    thrown = hs.series.abs_inv(operator, b, damping=0.1, num_terms=20, paper=True, throw=True)
    assert thrown.status is hs.Status.COMPLETED  # a budget that was asked for does not raise


def _indefinite_problem(n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    values = np.linspace(-2.0, 3.0, n)
    return (q * values) @ q.T, rng.standard_normal(n)


def test_every_method_calls_back_with_iterates() -> None:
    matrix, b = _indefinite_problem()
    methods = {"dense": matrix, "lanczos": hs.aslinearoperator(matrix)}
    for method, operator in methods.items():
        iterates: list[np.ndarray] = []
        reports: list[tuple[int, object]] = []
        result = hs.abs_inv(
            operator,
            b,
            damping=0.5,
            method=method,
            rtol=1e-8,
            callback=iterates.append,
            progress=lambda count, estimate, seen=reports: seen.append((count, estimate)),
        )
        assert result.converged, method
        assert iterates and all(x.shape == b.shape for x in iterates), method
        np.testing.assert_allclose(iterates[-1], result.x, rtol=1e-6, err_msg=method)
        assert reports and reports[-1][0] == result.n_matvec, method
    for method in ("series", "chebyshev", "rational"):
        iterates = []
        hs.abs_inv(matrix, b, damping=0.5, method=method, rtol=1e-6, callback=iterates.append)
        assert iterates and iterates[-1].shape == b.shape, method


def test_lanczos_block_callback_sees_the_block() -> None:
    matrix, b = _indefinite_problem()
    block = np.stack([b, -2.0 * b], axis=1)
    seen: list[np.ndarray] = []
    result = hs.krylov.funm_lanczos(matrix, block, np.abs, rtol=1e-8, callback=seen.append)
    assert result.converged
    assert all(x.shape == block.shape for x in seen)
    assert np.all(seen[0][:, 1] == 0)  # the second column has not started yet
    np.testing.assert_allclose(seen[-1], result.x, rtol=1e-6)


def test_two_pass_lanczos_refuses_an_iterate_callback() -> None:
    matrix, b = _indefinite_problem()
    with pytest.raises(ValueError, match="progress="):
        hs.krylov.funm_lanczos(matrix, b, np.abs, memory="two-pass", callback=print)


def test_relative_error_estimate_is_reported() -> None:
    matrix, b = _indefinite_problem()
    for method in ("dense", "lanczos", "series", "chebyshev", "rational"):
        result = hs.abs_inv(matrix, b, damping=0.5, method=method, rtol=1e-6)
        relative = result.error_estimate / np.linalg.norm(result.x)
        assert result.relative_error_estimate == pytest.approx(relative), method
        assert result.relative_error_estimate <= 1e-6 or not result.converged, method
    block = hs.funm(matrix, np.stack([b, 1e-3 * b], axis=1), np.abs, method="lanczos")
    assert block.relative_error_estimate.shape == (2,)


@pytest.mark.parametrize("method", ["dense", "lanczos", "chebyshev"])
@pytest.mark.parametrize(
    ("f", "error", "words"),
    [
        (lambda t: 1.0, ValueError, "vectorised"),
        (lambda t: t[:2], ValueError, "vectorised"),
        (lambda t: np.ones((2, 2)), ValueError, "vectorised"),
        (lambda t: "x", TypeError, "real numbers"),
    ],
)
def test_funm_refuses_a_function_of_the_wrong_shape(method, f, error, words) -> None:
    A = np.diag([1.0, 2.0, 3.0, 4.0])
    with pytest.raises(error, match=words):
        hs.funm(A, np.ones(4), f, method=method)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_is_refused_with_the_fix(dtype) -> None:
    torch = pytest.importorskip("torch")
    A = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=getattr(torch, dtype)))
    b = torch.ones(3, dtype=A.dtype)
    for method in ("dense", "lanczos"):
        with pytest.raises(TypeError, match="float32 or wider"):
            hs.abs_inv(A, b, method=method)
    with pytest.raises(TypeError, match="float32 or wider"):
        hs.series.abs_inv(A, b)
    with pytest.raises(TypeError, match="float32 or wider"):
        hs.abs_inv(np.diag([1.0, 2.0]).astype(np.float16), np.ones(2, dtype=np.float16))


@pytest.mark.parametrize("n", [50, 400])
def test_float32_dense_path_is_not_too_pessimistic(n) -> None:
    rng = np.random.default_rng(n)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    values = np.concatenate([np.linspace(-10.0, -1.0, n // 2), np.linspace(1.0, 10.0, n - n // 2)])
    A = ((q * values) @ q.T).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    exact_values, vectors = np.linalg.eigh(A.astype(np.float64))
    exact = vectors @ ((vectors.T @ b.astype(np.float64)) / np.abs(exact_values))
    result = hs.abs_inv(A, b, rtol=1e-5)
    error = np.linalg.norm(result.x.astype(np.float64) - exact) / np.linalg.norm(exact)
    assert result.info["method"] == "dense"
    assert result.status is hs.Status.SUCCESS  # was STAGNATED: estimate 300x the error
    assert error <= result.relative_error_estimate <= 1e-5


def test_float32_dense_path_still_flags_a_near_singular_sign() -> None:
    rng = np.random.default_rng(3)
    n = 100
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    values = rng.uniform(-1.0, 1.0, n)
    values[:2] = [-1e-9, 1e-9]  # far inside float32's rounding of ||A||
    A = ((q * values) @ q.T).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    assert hs.sign(A, b, rtol=1e-4).status is hs.Status.STAGNATED


def test_a_hook_that_is_not_callable_is_refused() -> None:
    matrix, b = _indefinite_problem()
    with pytest.raises(TypeError, match="progress must be callable"):
        hs.abs_inv(matrix, b, progress=3)
    with pytest.raises(TypeError, match="callback must be callable"):
        hs.krylov.funm_lanczos(matrix, b, np.abs, callback="x")
