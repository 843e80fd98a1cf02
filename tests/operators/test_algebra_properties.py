"""Property-based checks of the operator algebra against dense NumPy algebra."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import hvpseries as hs

_entries = st.floats(-10, 10, allow_nan=False, allow_infinity=False)
_scalars = st.floats(-5, 5, allow_nan=False, allow_infinity=False)


@st.composite
def square_pair_and_vector(draw):
    n = draw(st.integers(1, 6))
    a = draw(arrays(np.float64, (n, n), elements=_entries))
    b = draw(arrays(np.float64, (n, n), elements=_entries))
    x = draw(arrays(np.float64, (n,), elements=_entries))
    return a, b, x


def _assert_close(actual, expected) -> None:
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-10 * scale)


@given(square_pair_and_vector())
def test_sum_is_linear(case) -> None:
    a, b, x = case
    A, B = hs.aslinearoperator(a), hs.aslinearoperator(b)
    _assert_close((A + B) @ x, A @ x + B @ x)
    _assert_close((A - B) @ x, a @ x - b @ x)


@given(square_pair_and_vector())
def test_product_composes(case) -> None:
    a, b, x = case
    A, B = hs.aslinearoperator(a), hs.aslinearoperator(b)
    _assert_close((A @ B) @ x, A @ (B @ x))
    _assert_close((A @ B).H @ x, B.H @ (A.H @ x))


@given(square_pair_and_vector(), st.integers(0, 4))
def test_power_repeats(case, k) -> None:
    a, _, x = case
    _assert_close(hs.aslinearoperator(a / 10) ** k @ x, np.linalg.matrix_power(a / 10, k) @ x)


@given(square_pair_and_vector(), _scalars, _scalars)
def test_scaling_and_shift(case, c, s) -> None:
    a, _, x = case
    A = hs.aslinearoperator(a)
    _assert_close((c * A) @ x, c * (a @ x))
    _assert_close(A.shift(s) @ x, a @ x + s * x)


@given(
    st.integers(1, 6).flatmap(
        lambda n: st.tuples(
            arrays(np.float64, (n, n + 1), elements=_entries),
            arrays(np.float64, (n + 1,), elements=_entries),
            arrays(np.float64, (n,), elements=_entries),
        )
    )
)
def test_adjoint_dot_test(case) -> None:
    a, x, y = case
    A = hs.aslinearoperator(a) * 2.0
    left, right = np.dot(A @ x, y), np.dot(x, A.H @ y)
    assert abs(left - right) <= 1e-9 * max(1.0, np.abs(a).sum() * np.abs(x).sum() * np.abs(y).sum())


@given(square_pair_and_vector())
def test_matmat_equals_stacked_matvecs(case) -> None:
    a, b, x = case
    operator = hs.aslinearoperator(a) @ hs.aslinearoperator(b) + hs.aslinearoperator(a)
    block = np.stack([x, 2 * x, -x], axis=1)
    stacked = np.stack([operator @ column for column in block.T], axis=1)
    _assert_close(operator.matmat(block), stacked)
