"""Explicit matrices are checked for symmetry; complex Hermitian ones are solved correctly."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse

import hvpseries as hs
from hvpseries import krylov

RNG = np.random.default_rng(0)
NONSYMMETRIC = RNG.standard_normal((30, 30))
CALLS = {
    "solve": lambda a, b: hs.solve(a, b),
    "abs_inv": lambda a, b: hs.abs_inv(a, b, damping=0.1),
    "sign": lambda a, b: hs.sign(a, b),
    "funm_lanczos": lambda a, b: krylov.funm_lanczos(a, b, np.exp),
    "minres": lambda a, b: krylov.minres(a, b),
}


@pytest.mark.parametrize("name", sorted(CALLS))
@pytest.mark.parametrize("form", ["dense", "sparse"])
def test_untagged_nonsymmetric_matrix_is_refused(name, form) -> None:
    # hs.solve used to return SUCCESS with a residual 34x ||b|| (it solved (A + A^T) / 2).
    a = NONSYMMETRIC if form == "dense" else scipy.sparse.csr_matrix(NONSYMMETRIC)
    with pytest.raises(ValueError, match=r"max\|A - A\^H\| / max\|A\| = 1\.\d+.*symmetric=True"):
        CALLS[name](a, np.ones(30))


def test_rounding_level_asymmetry_is_accepted_and_tag_skips_the_check() -> None:
    q, _ = np.linalg.qr(RNG.standard_normal((30, 30)))
    a = (q * np.linspace(1.0, 2.0, 30)) @ q.T  # symmetric up to rounding, not exactly
    assert hs.solve(a, np.ones(30)).converged
    tagged = hs.aslinearoperator(NONSYMMETRIC, symmetric=True)
    assert hs.solve(tagged, np.ones(30)).info["method"] == "dense"


def test_relative_asymmetry() -> None:
    assert hs.aslinearoperator(np.eye(3)).relative_asymmetry() == 0.0
    assert hs.aslinearoperator(np.zeros((3, 3))).relative_asymmetry() == 0.0
    sparse = scipy.sparse.csr_matrix(np.array([[1.0, 2.0], [0.0, 1.0]]))
    assert hs.aslinearoperator(sparse).relative_asymmetry() == 1.0


@pytest.mark.parametrize("method", ["auto", "dense", "cg", "minres"])
def test_complex_hermitian_solve(method) -> None:
    # The dense path used to return SUCCESS with relative residual 0.42 (V^T b for V^H b).
    n = 40
    z = RNG.standard_normal((n, n)) + 1j * RNG.standard_normal((n, n))
    a = z @ z.conj().T + n * np.eye(n)
    b = RNG.standard_normal(n) + 1j * RNG.standard_normal(n)
    result = hs.solve(a, b, method=method, rtol=1e-10)
    assert result.status is hs.Status.SUCCESS
    assert np.linalg.norm(a @ result.x - b) <= 1e-9 * np.linalg.norm(b)


def test_complex_symmetric_non_hermitian_is_refused() -> None:
    z = RNG.standard_normal((20, 20)) + 1j * RNG.standard_normal((20, 20))
    with pytest.raises(ValueError, match="Hermitian"):
        hs.solve(z + z.T, np.ones(20, dtype=complex))


def test_a_nonsymmetric_matrix_free_operator_is_refused() -> None:
    rng = np.random.default_rng(0)
    M = rng.standard_normal((40, 40))
    nonsymmetric = hs.FunctionOperator(lambda x: M @ x, shape=(40, 40), dtype=np.float64)
    for call in (
        lambda A: hs.abs_inv(A, np.ones(40), method="lanczos"),
        lambda A: hs.krylov.cg(A, np.ones(40)),
        lambda A: hs.krylov.minres(A, np.ones(40)),
        lambda A: hs.series.abs_inv(A, np.ones(40)),
    ):
        with pytest.raises(ValueError, match="symmetric=True"):
            call(nonsymmetric)


def test_the_symmetry_probe_is_counted_once_and_skipped_when_tagged() -> None:
    rng = np.random.default_rng(1)
    M = rng.standard_normal((40, 40))
    S = M + M.T
    untagged = hs.CountingOperator(
        hs.FunctionOperator(lambda x: S @ x, shape=(40, 40), dtype=np.float64)
    )
    first = hs.abs_inv(untagged, np.ones(40), damping=1.0, method="lanczos")
    assert first.n_matvec == untagged.n_matvec  # the probe's two products are counted
    second = hs.abs_inv(untagged, np.ones(40), damping=1.0, method="lanczos")
    assert second.n_matvec == first.n_matvec - 2  # probed once per operator
    tagged = hs.CountingOperator(
        hs.FunctionOperator(lambda x: S @ x, shape=(40, 40), dtype=np.float64, symmetric=True)
    )
    third = hs.abs_inv(tagged, np.ones(40), damping=1.0, method="lanczos")
    assert third.n_matvec == tagged.n_matvec == second.n_matvec
    np.testing.assert_allclose(third.x, first.x, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rounding_does_not_trip_the_probe(dtype) -> None:
    rng = np.random.default_rng(2)
    n = 3000
    M = rng.standard_normal((n, n)).astype(dtype)
    S = (M + M.T) / 2
    # a symmetric product computed in an order that rounds differently from its transpose
    operator = hs.FunctionOperator(lambda x: S @ x + 1e-3 * (S @ x), shape=(n, n), dtype=dtype)
    result = hs.krylov.minres(operator, np.ones(n, dtype=dtype), maxiter=3)
    assert result.n_matvec >= 3
