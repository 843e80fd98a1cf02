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
        callback=lambda count, estimate: estimates.append(estimate),
    )
    assert 0 < estimates[-1] < 1e-6 * tiny * np.linalg.norm(B) * 10
    with pytest.raises(ConvergenceError) as caught:
        krylov.minres(hs.aslinearoperator(INDEFINITE), B * tiny, rtol=1e-12, maxiter=2, throw=True)
    assert caught.value.result.status is Status.MAX_ITERATIONS
    assert np.linalg.norm(caught.value.result.x) < 1e3 * tiny
