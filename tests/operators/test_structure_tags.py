"""Structure tags: given by users or constructors, propagated only where certain."""

from __future__ import annotations

import numpy as np
import pytest

import hvpseries as hs


def _op(symmetric=None, psd=None, n=3):
    return hs.aslinearoperator(np.eye(n), symmetric=symmetric, psd=psd)


def test_unknown_by_default() -> None:
    A = hs.aslinearoperator(np.eye(3))
    assert A.symmetric is None and A.psd is None


def test_psd_implies_symmetric() -> None:
    assert _op(psd=True).symmetric is True
    with pytest.raises(ValueError, match="implies symmetric"):
        _op(symmetric=False, psd=True)


def test_rectangular_cannot_be_symmetric() -> None:
    with pytest.raises(ValueError, match="not square"):
        hs.aslinearoperator(np.ones((2, 3)), symmetric=True)


def test_tags_must_be_booleans() -> None:
    with pytest.raises(TypeError, match="True, False or None"):
        hs.aslinearoperator(np.eye(2), symmetric="yes")


@pytest.mark.parametrize(
    ("make", "symmetric", "psd"),
    [
        (lambda S, P, N: S + S, True, None),
        (lambda S, P, N: P + P, True, True),
        (lambda S, P, N: S + N, False, None),
        (lambda S, P, N: N + N, None, None),
        (lambda S, P, N: 2.0 * P, True, True),
        (lambda S, P, N: -P, True, None),
        (lambda S, P, N: 1j * S, None, None),
        (lambda S, P, N: S @ S, True, True),
        (lambda S, P, N: N.H @ N, True, True),
        (lambda S, P, N: N @ N.H, True, True),
        (lambda S, P, N: S @ P, None, None),
        (lambda S, P, N: S**2, True, True),
        (lambda S, P, N: S**3, True, None),
        (lambda S, P, N: P**3, True, True),
        (lambda S, P, N: N**0, True, True),
        (lambda S, P, N: P.shift(1.0), True, True),
        (lambda S, P, N: P.shift(-1.0), True, None),
        (lambda S, P, N: S.T, True, None),
        (lambda S, P, N: N.H, False, None),
    ],
)
def test_propagation(make, symmetric, psd) -> None:
    S, P, N = _op(symmetric=True), _op(psd=True), _op(symmetric=False)
    result = make(S, P, N)
    assert (result.symmetric, result.psd) == (symmetric, psd)


def test_symmetric_adjoint_is_itself() -> None:
    S = _op(symmetric=True)
    assert S.H is S and S.T is S


def test_with_structure_and_aslinearoperator_retag_without_mutating() -> None:
    A = hs.FunctionOperator(lambda x: x, (2, 2))
    B = hs.aslinearoperator(A, symmetric=True)
    assert B.symmetric is True and A.symmetric is None
    assert hs.aslinearoperator(A) is A


def test_diagonal_tags_are_read_from_entries() -> None:
    assert hs.DiagonalOperator(np.array([1.0, 0.0])).psd is True
    assert hs.DiagonalOperator(np.array([1.0, -1.0])).psd is False
    complex_diagonal = hs.DiagonalOperator(np.array([1.0 + 1j, 2.0]))
    assert complex_diagonal.symmetric is False and complex_diagonal.psd is False
