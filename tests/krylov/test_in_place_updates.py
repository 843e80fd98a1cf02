"""Solvers that update their vectors in place stay right for operators that reuse memory.

An operator may return one output buffer that it overwrites on every call (a preallocated
workspace). A solver writing in place into the product it received, or keeping it across a
matvec, would then corrupt its own vectors.
"""

from __future__ import annotations

import numpy as np
import pytest

import hvpseries as hs
from hvpseries import krylov


def _spectrum_and_matrix(n: int = 60):
    rng = np.random.default_rng(3)
    eigenvalues = np.concatenate(
        [np.linspace(-3.0, -0.5, n // 4), np.linspace(0.4, 5.0, n - n // 4)]
    )
    basis, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return eigenvalues, basis, (basis * eigenvalues) @ basis.T


def _buffer_operator(matrix: np.ndarray) -> hs.LinearOperator:
    """Each product is written into one buffer, overwritten by the next product."""
    out = np.empty(matrix.shape[0])
    out_block: dict[int, np.ndarray] = {}

    def matvec(x):
        np.matmul(matrix, x, out=out)
        return out

    def matmat(X):
        buffer = out_block.setdefault(X.shape[1], np.empty((matrix.shape[0], X.shape[1])))
        np.matmul(matrix, X, out=buffer)
        return buffer

    return hs.FunctionOperator(
        matvec, matrix.shape, dtype=np.float64, matmat=matmat, symmetric=True
    )


def _reference(eigenvalues, basis, f, b):
    return basis @ (f(eigenvalues) * (basis.T @ b))


def _relative_error(x, exact) -> float:
    return float(np.linalg.norm(np.asarray(x) - exact) / np.linalg.norm(exact))


OPERATORS = [_buffer_operator]


@pytest.mark.parametrize("make", OPERATORS, ids=["buffer"])
@pytest.mark.parametrize("memory", ["store", "two-pass"])
def test_funm_lanczos_with_reused_product_memory(make, memory) -> None:
    eigenvalues, basis, matrix = _spectrum_and_matrix()
    b = np.random.default_rng(0).standard_normal(matrix.shape[0])
    f = np.abs
    result = krylov.funm_lanczos(make(matrix), b.copy(), f, rtol=1e-9, memory=memory)
    assert result.status is hs.Status.SUCCESS
    assert _relative_error(result.x, _reference(eigenvalues, basis, f, b)) <= 1e-7


@pytest.mark.parametrize("make", OPERATORS, ids=["buffer"])
@pytest.mark.parametrize("width", [1, 2])
def test_minres_with_reused_product_memory(make, width) -> None:
    _, _, matrix = _spectrum_and_matrix()
    b = np.random.default_rng(1).standard_normal((matrix.shape[0], width))
    result = krylov.minres(make(matrix), b.copy(), rtol=1e-10)
    assert result.status is hs.Status.SUCCESS
    assert _relative_error(result.x, np.linalg.solve(matrix, b)) <= 1e-8


@pytest.mark.parametrize("make", OPERATORS, ids=["buffer"])
@pytest.mark.parametrize("width", [1, 2])
def test_cg_with_reused_product_memory(make, width) -> None:
    eigenvalues, basis, _ = _spectrum_and_matrix()
    spd = (basis * np.abs(eigenvalues)) @ basis.T
    b = np.random.default_rng(2).standard_normal((spd.shape[0], width))
    result = krylov.cg(make(spd), b.copy(), rtol=1e-10)
    assert result.status is hs.Status.SUCCESS
    assert _relative_error(result.x, np.linalg.solve(spd, b)) <= 1e-8


@pytest.mark.parametrize("make", OPERATORS, ids=["buffer"])
def test_multishift_with_reused_product_memory(make) -> None:
    eigenvalues, basis, _ = _spectrum_and_matrix()
    spd = (basis * np.abs(eigenvalues)) @ basis.T
    b = np.random.default_rng(4).standard_normal(spd.shape[0])
    shifts = [0.0, 0.5, 3.0]
    result = krylov.cg_multishift(make(spd), b.copy(), shifts, rtol=1e-10)
    assert result.status is hs.Status.SUCCESS
    for column, shift in enumerate(shifts):
        exact = np.linalg.solve(spd + shift * np.eye(spd.shape[0]), b)
        assert _relative_error(np.asarray(result.x)[column], exact) <= 1e-8


@pytest.mark.parametrize("make", OPERATORS, ids=["buffer"])
def test_chebyshev_with_reused_product_memory(make) -> None:
    eigenvalues, basis, _ = _spectrum_and_matrix()
    spd = (basis * np.abs(eigenvalues)) @ basis.T
    b = np.random.default_rng(5).standard_normal(spd.shape[0])
    result = krylov.funm_chebyshev(make(spd), b.copy(), np.sqrt, interval=(0.3, 5.1), rtol=1e-10)
    assert result.status is hs.Status.SUCCESS
    exact = _reference(np.abs(eigenvalues), basis, np.sqrt, b)
    assert _relative_error(result.x, exact) <= 1e-8


def test_multishift_with_a_zero_column_keeps_its_first_direction() -> None:
    # a zero column makes R a copy of B's other columns, and P the same array as R: updating
    # R in place would also change P
    eigenvalues, basis, _ = _spectrum_and_matrix()
    spd = (basis * np.abs(eigenvalues)) @ basis.T
    b = np.random.default_rng(6).standard_normal(spd.shape[0])
    block = np.stack([b, np.zeros_like(b)], axis=1)
    shifts = [0.0, 1.0, 10.0]
    result = krylov.cg_multishift(spd, block, shifts, rtol=1e-10)
    assert result.status is hs.Status.SUCCESS
    for i, shift in enumerate(shifts):
        exact = np.linalg.solve(spd + shift * np.eye(spd.shape[0]), b)
        assert _relative_error(np.asarray(result.x)[i][:, 0], exact) <= 1e-8
        assert np.all(np.asarray(result.x)[i][:, 1] == 0.0)
