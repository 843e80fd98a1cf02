from fractions import Fraction
from math import comb

import mpmath
import numpy as np
import pytest

from hvpseries.series import coefficients
from hvpseries.series._coefficients import CoefficientStream, generating_function


def _damped_reference(delta: float, count: int) -> list:
    """Power-series coefficients of 1/(sqrt(1-x)+delta) by mpmath's Taylor expansion."""
    with mpmath.workdps(40):
        d = mpmath.mpf(delta)
        return mpmath.taylor(lambda x: 1 / (mpmath.sqrt(1 - x) + d), 0, count - 1)


def test_inv_sqrt_is_central_binomial_over_four_to_the_n():
    c = coefficients("inv_sqrt", 60)
    exact = [Fraction(comb(2 * n, n), 4**n) for n in range(60)]
    np.testing.assert_allclose(c, [float(e) for e in exact], rtol=1e-15, atol=0)


def test_inv_sqrt_accurate_to_a_thousand_terms():
    c = coefficients("inv_sqrt", 1001)
    with mpmath.workdps(40):
        for n in (10, 500, 1000):
            exact = mpmath.binomial(2 * n, n) / mpmath.mpf(4) ** n
            assert abs(c[n] - exact) / exact < 1e-13


@pytest.mark.parametrize("delta", [0.0, 0.32, 0.9, 0.99, 1.0, 3.0, 10.0])
def test_damped_matches_mpmath_taylor(delta):
    c = coefficients("damped", 40, delta=delta)
    reference = np.array([float(r) for r in _damped_reference(delta, 40)])
    np.testing.assert_allclose(c, reference, rtol=1e-12, atol=0)


@pytest.mark.skipif(np.finfo(np.longdouble).eps > 1e-18, reason="needs 80-bit long double")
@pytest.mark.parametrize("delta", [0.0, 0.32, 0.9, 0.99, 1.0, 3.0, 10.0])
def test_damped_accurate_to_1e12_for_a_thousand_terms(delta):
    # Reference: the division recurrence in 80-bit long double (eps 1e-19, all terms positive,
    # so the reference is good to ~1e-16), anchored to mpmath's exact values for 100 terms.
    count = 1000
    s = np.ones(count, dtype=np.longdouble)
    for k in range(1, count):
        s[k] = s[k - 1] * np.longdouble(2 * k - 3) / np.longdouble(2 * k)
    s = np.abs(s)
    s[1] = np.longdouble(0.5)
    lead = 1 / (1 + np.longdouble(delta))
    exact = np.empty(count, dtype=np.longdouble)
    exact[0] = lead
    for n in range(1, count):
        exact[n] = lead * np.dot(s[1 : n + 1], exact[n - 1 :: -1])
    head = np.array([float(r) for r in _damped_reference(delta, 20)])
    np.testing.assert_allclose(exact[:20].astype(float), head, rtol=1e-15)
    c = coefficients("damped", count, delta=delta)
    worst = np.max(np.abs((c - exact) / exact))
    assert worst < 1e-12


def test_damped_with_zero_delta_is_inv_sqrt():
    np.testing.assert_allclose(
        coefficients("damped", 300, delta=0.0), coefficients("inv_sqrt", 300), rtol=1e-14
    )


def test_forward_recurrence_would_fail_where_the_stable_one_does_not():
    # The spec's forward recurrence loses everything near delta = 1; ours stays positive.
    c = coefficients("damped", 400, delta=0.999)
    assert np.all(c > 0)
    assert np.all(np.diff(c[5:]) < 0)


def test_sqrt_and_neumann():
    s = coefficients("sqrt", 6)
    np.testing.assert_allclose(s, [1, -1 / 2, -1 / 8, -1 / 16, -5 / 128, -7 / 256], rtol=1e-15)
    np.testing.assert_array_equal(coefficients("neumann", 4), np.ones(4))


@pytest.mark.parametrize(("kind", "delta"), [("inv_sqrt", 0.0), ("sqrt", 0.0), ("damped", 0.7)])
def test_series_sum_to_the_generating_function(kind, delta):
    x = 0.5
    c = coefficients(kind, 200, delta=delta)
    assert np.polynomial.polynomial.polyval(x, c) == pytest.approx(
        generating_function(kind, x, delta), rel=1e-14
    )


def test_stream_growth_matches_one_shot():
    stream = CoefficientStream("damped", delta=0.5)
    values = [stream[n] for n in range(100)]
    np.testing.assert_array_equal(values, coefficients("damped", 100, delta=0.5))
    assert stream[500] == coefficients("damped", 501, delta=0.5)[500]


def test_result_is_a_fresh_writable_array():
    c = coefficients("inv_sqrt", 3)
    c[0] = 5.0
    assert coefficients("inv_sqrt", 3)[0] == 1.0


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        (("nope", 3), {}, ValueError),
        (("inv_sqrt", 0), {}, ValueError),
        (("inv_sqrt", 2.0), {}, TypeError),
        (("damped", 3), {"delta": -1.0}, ValueError),
        (("damped", 3), {"delta": float("nan")}, ValueError),
        (("inv_sqrt", 3), {"delta": 0.5}, ValueError),
    ],
)
def test_bad_input(args, kwargs, error):
    with pytest.raises(error):
        coefficients(*args, **kwargs)
