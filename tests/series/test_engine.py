"""The series loop's per-term growth test: one column in floats agrees with the block form."""

from __future__ import annotations

import itertools
import math

import numpy as np

from hvpseries.series._engine import _contraction

VALUES = [0.0, -0.0, 5e-324, 1e-300, 0.5, 1.0, 1.0 + 1e-8, 2.0, 1e300, math.inf, math.nan]


def test_one_column_agrees_with_the_block_test_on_edge_cases() -> None:
    """Zeros, subnormals, huge values, inf and NaN give the same ratio and verdict either way."""
    tolerance = 1.0 + 1.5e-8
    for now, before, limit in itertools.product(VALUES, VALUES, [0.0, 1.5, 1e300, math.inf]):
        column = (np.array([now]), np.array([before]), np.array([limit]))
        # Two copies of the column form a block, which takes the NumPy path.
        block = tuple(np.array([value[0], value[0]]) for value in column)
        ratio, contracting = _contraction(*column, tolerance)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            ratios, block_contracting = _contraction(*block, tolerance)
        assert isinstance(contracting, bool)
        assert contracting == block_contracting, (now, before, limit)
        np.testing.assert_array_equal(ratio, ratios[:1])


def test_growth_and_nan_fail_and_a_zero_previous_term_is_ratio_zero() -> None:
    one = np.array([1.0])
    ratio, contracting = _contraction(np.array([0.5]), one, np.array([2.0]), 1.0)
    assert ratio[0] == 0.5 and contracting
    assert not _contraction(np.array([1.5]), one, np.array([2.0]), 1.0)[1]  # grew
    assert not _contraction(np.array([0.5]), one, np.array([0.25]), 1.0)[1]  # above the limit
    assert not _contraction(np.array([math.nan]), one, np.array([2.0]), 1.0)[1]
    ratio, contracting = _contraction(np.array([0.0]), np.array([0.0]), np.array([2.0]), 1.0)
    assert ratio[0] == 0.0 and contracting


def test_no_success_from_repeating_accelerated_values_without_a_contraction() -> None:
    """float32: the term ratio rounds to 1 and the accelerated values repeat: not converged.

    The series for x = 1 / (1 + 0.01) needs many more terms than float32 can resolve (the
    ratio 1 - 1e-5 rounds to 1); identical accelerated values once gave SUCCESS with an
    error estimate of 0 and x = 0.07.
    """
    from hvpseries import series

    A = np.diag(np.float32([1.0, 1000.0]))
    b = np.float32([1.0, 0.0])
    for acceleration in ("wynn", "wynn-sablonniere", "levin", "aitken", "tail"):
        result = series.abs_inv(A, b, damping=0.01, rtol=1e-5, acceleration=acceleration)
        error = abs(float(result.x[0]) - 1.0 / 1.01)
        assert not result.converged or result.error_estimate >= error / 10, acceleration
        assert result.status.name == "MAX_ITERATIONS", acceleration


def _spectrum_with_outliers(negative: float | None = None):
    rng = np.random.default_rng(0)
    eigenvalues = np.r_[rng.uniform(1.0, 2.0, 47), [100.0] * 3]
    if negative is not None:
        eigenvalues[0] = negative
    return np.diag(eigenvalues), rng.standard_normal(50)


def test_too_small_a_scale_on_a_definite_operator_is_diverged_not_indefinite() -> None:
    """A lower-bound scale below half the top eigenvalue: the advice is a larger scale.

    The terms of a positive definite operator grew through an eigenvalue of Z below -1; the
    old sign test of two consecutive terms reported INDEFINITE ("a negative eigenvalue") in 55
    of 217 fuzz runs.
    """
    from hvpseries import series

    A, b = _spectrum_with_outliers()
    for solver in (series.neumann, series.inv_sqrt, series.sqrt):
        result = solver(A, b, scale="lower_bound", rtol=1e-6)
        assert result.status.name == "DIVERGED", solver.__name__
        assert "scale" in result.info["advice"]
        applies = result.n_iter - 1 + result.info.get("classification_applies", 0)
        assert result.n_matvec == applies  # the power steps are counted


def test_a_negative_eigenvalue_under_an_adequate_scale_is_indefinite() -> None:
    from hvpseries import series

    A, b = _spectrum_with_outliers(negative=-0.5)
    for solver in (series.neumann, series.inv_sqrt, series.sqrt):
        assert solver(A, b, scale=400.0, rtol=1e-6).status.name == "INDEFINITE"
        # too small a scale as well: the growth along Z < -1 dominates, and a larger scale
        # is the advice that changes the outcome
        assert solver(A, b, scale=20.0, rtol=1e-6).status.name == "DIVERGED"
