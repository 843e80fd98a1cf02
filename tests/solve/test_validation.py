"""The checks shared by every solver."""

from __future__ import annotations

import math

import numpy as np
import pytest

import hvpseries as hs
from hvpseries._core._checks import check_maxiter, check_positive_int, check_tolerances
from hvpseries._solve._validation import prepare_system, require_not_nonsymmetric


@pytest.mark.parametrize(
    ("rtol", "atol", "error"),
    [
        (-1.0, 0.0, ValueError),
        (math.nan, 0.0, ValueError),
        (1e-3, math.inf, ValueError),
        ("1e-3", 0.0, TypeError),
        (1e-3, None, TypeError),
        (True, 0.0, TypeError),
    ],
)
def test_bad_tolerances(rtol, atol, error) -> None:
    with pytest.raises(error, match=r"rtol|atol"):
        check_tolerances(rtol, atol)


def test_good_tolerances() -> None:
    check_tolerances(1e-6, 0.0)
    check_tolerances(None, 1e-3, rtol_may_be_none=True)
    with pytest.raises(TypeError):
        check_tolerances(None, 1e-3)


@pytest.mark.parametrize(
    ("value", "error"), [(0, ValueError), (-3, ValueError), (2.0, TypeError), (True, TypeError)]
)
def test_bad_positive_ints(value, error) -> None:
    with pytest.raises(error, match="num_terms must be an integer >= 1"):
        check_positive_int(value, "num_terms")


def test_maxiter() -> None:
    check_maxiter(None)
    check_maxiter(5)
    with pytest.raises(ValueError, match="maxiter"):
        check_maxiter(0)


def test_prepare_system_checks_everything() -> None:
    A, b = prepare_system(np.eye(3), np.ones((3, 2), dtype=np.float32))
    assert isinstance(A, hs.LinearOperator) and b.dtype == np.float64 and b.shape == (3, 2)
    with pytest.raises(ValueError, match="square"):
        prepare_system(np.ones((2, 3)), np.ones(3))
    with pytest.raises(ValueError, match=r"shape \(3,\) or \(3, k\).*got \(2,\)"):
        prepare_system(np.eye(3), np.ones(2))
    with pytest.raises(TypeError, match="floating point"):
        prepare_system(np.eye(3), np.arange(3))
    with pytest.raises(TypeError, match="b has dtype float64 but the operator computes in float32"):
        prepare_system(np.eye(3, dtype=np.float32), np.ones(3))


def test_prepare_system_rejects_mixed_libraries() -> None:
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="Mismatched array namespaces"):
        prepare_system(np.eye(2), torch.ones(2, dtype=torch.float64))


def test_require_not_nonsymmetric() -> None:
    require_not_nonsymmetric(hs.aslinearoperator(np.eye(2)), "abs_inv")
    with pytest.raises(ValueError, match="abs_inv needs a symmetric operator"):
        require_not_nonsymmetric(hs.aslinearoperator(np.eye(2), symmetric=False), "abs_inv")
