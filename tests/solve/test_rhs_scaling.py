"""Right-hand sides whose squared norms underflow or overflow are solved exactly scaled.

Without the rescaling a float32 ``b`` of norm ~1e-23 looked like zero (``x = 0``, SUCCESS: a
silent wrong answer) and one of norm ~1e22 looked non-finite.
"""

from __future__ import annotations

import numpy as np
import pytest

import hvpseries as hs
from hvpseries import ConvergenceError, Status, krylov, series

N = 24
RNG = np.random.default_rng(3)
Q, _ = np.linalg.qr(RNG.standard_normal((N, N)))
EIGENVALUES = np.concatenate([RNG.uniform(0.5, 2.0, N // 2), -RNG.uniform(0.5, 2.0, N // 2)])
INDEFINITE = (Q * EIGENVALUES) @ Q.T
SPD = (Q * np.abs(EIGENVALUES)) @ Q.T
B = RNG.standard_normal(N)


def _rtol(b) -> float:
    """A tolerance every method reaches in the dtype of ``b``."""
    return 1e-6 if b.dtype == np.float64 else 1e-4


SOLVERS = {
    "series.abs_inv": lambda A, S, b, **k: series.abs_inv(A, b, damping=0.1, rtol=1e-4, **k),
    "series.inv_sqrt": lambda A, S, b, **k: series.inv_sqrt(S, b, rtol=1e-4, **k),
    "series.sqrt": lambda A, S, b, **k: series.sqrt(S, b, rtol=1e-4, **k),
    "series.neumann": lambda A, S, b, **k: series.neumann(S, b, rtol=1e-4, **k),
    "cg": lambda A, S, b, **k: krylov.cg(S, b, rtol=_rtol(b), **k),
    "minres": lambda A, S, b, **k: krylov.minres(A, b, rtol=_rtol(b), **k),
    "cg_multishift": lambda A, S, b, **k: krylov.cg_multishift(
        S, b, [0.0, 1.0], rtol=_rtol(b), **k
    ),
    "funm_lanczos": lambda A, S, b, **k: krylov.funm_lanczos(A, b, np.abs, rtol=_rtol(b), **k),
    "funm_chebyshev": lambda A, S, b, **k: krylov.funm_chebyshev(
        S, b, np.sqrt, interval=(0.4, 2.1), rtol=_rtol(b), **k
    ),
    "abs_inv_rational": lambda A, S, b, **k: krylov.abs_inv_rational(A, b, rtol=_rtol(b), **k),
    "abs_inv (dense)": lambda A, S, b, **k: hs.abs_inv(A, b, method="auto", rtol=_rtol(b), **k),
}


def _extreme_powers(dtype) -> tuple[int, int]:
    """Powers of two that push the squared norm of an O(1) vector out of range."""
    return (-80, 72) if dtype == np.float32 else (-560, 540)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(SOLVERS))
def test_tiny_and_huge_rhs_give_the_scaled_answer(name, dtype):
    A, S = hs.aslinearoperator(INDEFINITE.astype(dtype)), hs.aslinearoperator(SPD.astype(dtype))
    solve = SOLVERS[name]
    reference = solve(A, S, B.astype(dtype))
    assert reference.converged
    for power in _extreme_powers(dtype):
        factor = 2.0**power
        result = solve(A, S, (B * factor).astype(dtype))
        assert result.status is reference.status, (power, result.status)
        assert result.n_matvec == reference.n_matvec
        np.testing.assert_allclose(result.x / factor, reference.x, rtol=1e-5, atol=0)
        if reference.error_estimate is not None:
            np.testing.assert_allclose(
                np.asarray(result.error_estimate) / factor, reference.error_estimate, rtol=1e-5
            )
        assert result.info["rhs_scale"] == 2.0 ** -(power + np.round(np.log2(np.linalg.norm(B))))


def test_well_scaled_rhs_is_untouched():
    A = hs.aslinearoperator(INDEFINITE)
    result = krylov.minres(A, B, rtol=1e-8)
    assert "rhs_scale" not in result.info


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_block_with_a_tiny_a_normal_and_a_zero_column(dtype):
    tiny = 2.0 ** _extreme_powers(dtype)[0]
    block = np.stack([B * tiny, B, np.zeros(N)], axis=1).astype(dtype)
    A = hs.aslinearoperator(INDEFINITE.astype(dtype))
    result = krylov.funm_lanczos(A, block, np.abs, rtol=_rtol(block))
    single = krylov.funm_lanczos(A, B.astype(dtype), np.abs, rtol=_rtol(block))
    assert result.converged
    np.testing.assert_allclose(result.x[:, 0] / tiny, single.x, rtol=1e-5)
    np.testing.assert_allclose(result.x[:, 1], single.x, rtol=1e-5)
    np.testing.assert_array_equal(result.x[:, 2], 0)
    assert result.info["rhs_scale"][1:] == [1.0, 1.0]


def test_tiny_rhs_on_every_backend(backend):
    tiny = 2.0 ** _extreme_powers(np.float32 if backend.dtype_name == "float32" else np.float64)[0]
    A = hs.aslinearoperator(backend.asarray(INDEFINITE))
    exact = Q @ ((Q.T @ B) / np.abs(EIGENVALUES))
    rtol = 1e-6 if backend.dtype_name == "float64" else 1e-4
    result = hs.abs_inv(A, backend.asarray(B * tiny), method="lanczos", rtol=rtol)
    assert result.converged
    np.testing.assert_allclose(backend.to_numpy(result.x) / tiny, exact, rtol=10 * rtol)


def test_callback_x0_atol_and_throw_see_the_callers_scale():
    tiny = 2.0**-560
    S = hs.aslinearoperator(SPD)
    iterates = []
    x0 = np.full(N, tiny)
    result = krylov.cg(S, B * tiny, x0, rtol=0.0, atol=1e-8 * tiny, callback=iterates.append)
    reference = krylov.cg(S, B, np.ones(N), rtol=0.0, atol=1e-8)
    assert result.converged and result.n_iter == reference.n_iter
    np.testing.assert_allclose(iterates[-1] / tiny, reference.x, rtol=1e-10)
    estimates = []
    krylov.funm_lanczos(
        hs.aslinearoperator(INDEFINITE),
        B * tiny,
        np.abs,
        rtol=1e-6,
        progress=lambda count, estimate: estimates.append(estimate),
    )
    assert 0 < estimates[-1] < 1e-6 * tiny * np.linalg.norm(B) * 10
    with pytest.raises(ConvergenceError) as caught:
        krylov.minres(hs.aslinearoperator(INDEFINITE), B * tiny, rtol=1e-12, maxiter=2, throw=True)
    assert caught.value.result.status is Status.MAX_ITERATIONS
    assert np.linalg.norm(caught.value.result.x) < 1e3 * tiny


def test_an_answer_beyond_the_dtype_is_nonfinite_not_success():
    """Scaled back up, x overflows float32: NONFINITE (as without the rescaling)."""
    A = hs.aslinearoperator(np.diag(np.linspace(1e-9, 2e-9, 20)).astype(np.float32), psd=True)
    b = np.full(20, 1e30, dtype=np.float32)
    for result in (krylov.cg(A, b, rtol=1e-4), hs.abs_inv(A, b, method="lanczos", rtol=1e-4)):
        assert result.status is Status.NONFINITE
        assert "overflows" in result.info["advice"]


def test_numpy_scalar_atol_is_scaled_like_a_float():
    S = hs.aslinearoperator(SPD)
    b = B * 2.0**540
    plain = krylov.cg(S, b, rtol=0.0, atol=1e-3, maxiter=50)
    assert plain.status is Status.MAX_ITERATIONS  # 1e-3 is far below rounding of ||b|| ~ 1e163
    for atol in (np.float32(1e-3), np.float64(1e-3), np.int64(0)):
        result = krylov.cg(S, b, rtol=0.0, atol=atol, maxiter=50)
        assert result.status is plain.status and result.n_iter == plain.n_iter


@pytest.mark.parametrize(("dtype", "size"), [(np.float64, 1e-310), (np.float32, 1e-40)])
def test_subnormal_rhs(dtype, size):
    A = hs.aslinearoperator(INDEFINITE.astype(dtype))
    b = (np.sign(B) * size).astype(dtype)  # every entry subnormal
    assert np.all(np.abs(b) < np.finfo(dtype).smallest_normal) and np.all(b != 0)
    reference = krylov.minres(A, np.sign(B).astype(dtype), rtol=_rtol(b))
    result = krylov.minres(A, b, rtol=_rtol(b))
    assert result.status is reference.status
    scale = float(b[0]) / float(np.sign(B[0]))  # the subnormal actually stored
    # b / scale is sign(B) up to the subnormal's rounding: agreement to the solver's tolerance
    np.testing.assert_allclose(result.x / scale, reference.x, rtol=10 * _rtol(b))


def test_huge_complex_rhs():
    """conj(b) @ b of huge complex entries is nan + nan j, not inf: still an overflow."""
    H = SPD + 1j * (np.triu(np.ones((N, N)), 1) - np.tril(np.ones((N, N)), -1)) * 0.01
    A = hs.aslinearoperator(H)
    b = (B + 1j * B[::-1]) * 2.0**540
    reference = krylov.cg(A, B + 1j * B[::-1], rtol=1e-8)
    result = krylov.cg(A, b, rtol=1e-8)
    assert result.status is reference.status is Status.SUCCESS
    np.testing.assert_allclose(result.x / 2.0**540, reference.x, rtol=1e-10)


def test_lanczos_block_progress_reports_each_columns_own_scale():
    tiny = 2.0**-600
    A = hs.aslinearoperator(INDEFINITE)
    seen = []
    block = np.stack([B, B * tiny], axis=1)
    result = krylov.funm_lanczos(
        A, block, np.abs, rtol=1e-8, progress=lambda count, estimate: seen.append(estimate)
    )
    assert result.converged and result.info["rhs_scale"][0] == 1.0
    ordinary = [e for e in seen if e > 1e-100]
    small = [e for e in seen if e <= 1e-100]
    assert ordinary and small and max(small) < 1e-150  # the tiny column's estimates are tiny


def test_residual_far_below_a_small_rhs_is_still_measured():
    """float32, ||b|| = 2^-58: r = 1e-5 b squared underflowed, so CG claimed a zero residual."""
    n = 1000
    diagonal = np.linspace(1.0, 100.0, n).astype(np.float32)
    A = hs.aslinearoperator(np.diag(diagonal), psd=True)
    b = np.ones(n, dtype=np.float32)
    b *= np.float32(2.0**-58 / np.linalg.norm(b))
    result = krylov.cg(A, b, rtol=1e-5)
    assert result.converged
    true_residual = np.linalg.norm(diagonal.astype(float) * result.x - b) / np.linalg.norm(b)
    assert true_residual <= 2e-5
    assert result.residual_norm > 0


def test_x0_that_does_not_fit_the_scaled_problem_is_solved_as_given():
    tiny = 2.0**-560
    result = krylov.cg(hs.aslinearoperator(SPD), B * tiny, np.full(N, 1e150), maxiter=3)
    assert "rhs_scale" not in result.info


@pytest.mark.parametrize(
    ("dtype", "size"), [(np.float32, 1e-25), (np.float32, 1e20), (np.float64, 1e-170)]
)
def test_lanczos_on_a_badly_scaled_operator(dtype, size):
    """float32: ||A v||^2 underflowed, beta = 0 looked like a breakdown (SUCCESS, 19x off);
    float64: the norm of the coefficients ~1e170 overflowed, so inf <= rtol * inf passed."""
    A = hs.aslinearoperator((size * INDEFINITE).astype(dtype))
    exact = Q @ ((Q.T @ B) / np.abs(EIGENVALUES))  # of the unscaled operator
    result = hs.abs_inv(A, B.astype(dtype), method="lanczos", rtol=1e-4)
    assert result.converged
    x = np.asarray(result.x, dtype=np.float64) * size
    assert np.linalg.norm(x - exact) <= 1e-3 * np.linalg.norm(exact)


@pytest.mark.parametrize(("dtype", "size"), [(np.float32, 1e-22), (np.float64, 1e-161)])
def test_power_iteration_on_a_tiny_operator(dtype, size):
    """The squared residual underflowed first: converged after one step, 40% off."""
    P = hs.aslinearoperator((size * SPD).astype(dtype))
    result = hs.power_iteration(P, rtol=1e-5)
    largest = np.max(np.abs(EIGENVALUES))
    assert result.converged
    assert abs(result.eigenvalue / size - largest) <= 1e-3 * largest


@pytest.mark.parametrize(("dtype", "size"), [(np.float32, 1e-23), (np.float64, 1e170)])
def test_lanczos_start_vector_of_extreme_norm(dtype, size):
    A = hs.aslinearoperator(INDEFINITE.astype(dtype))
    reference = krylov.lanczos(A, B.astype(dtype), 10)
    result = krylov.lanczos(A, (B * size).astype(dtype), 10)
    np.testing.assert_allclose(result.alpha, reference.alpha, rtol=1e-4)
    np.testing.assert_allclose(result.beta, reference.beta, rtol=1e-4)
