import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hvpseries.acceleration import aitken, levin, wynn_epsilon

LOG2_SUMS = [sum((-1) ** (k + 1) / k for k in range(1, n + 1)) for n in range(1, 14)]
BASEL_SUMS = [sum(1 / k**2 for k in range(1, n + 1)) for n in range(1, 14)]


def test_scalar_log2():
    plain = abs(LOG2_SUMS[-1] - math.log(2))
    assert abs(aitken(LOG2_SUMS) - math.log(2)) < plain / 100
    assert abs(wynn_epsilon(LOG2_SUMS, 3) - math.log(2)) < 1e-7
    for kind in ("t", "u", "v"):
        assert abs(levin(LOG2_SUMS, kind) - math.log(2)) < 1e-12


def test_scalar_geometric_is_exact():
    sums = [sum(0.7**k for k in range(n + 1)) for n in range(6)]
    limit = 1 / 0.3
    assert aitken(sums) == pytest.approx(limit, rel=1e-13)
    assert wynn_epsilon(sums, 1) == pytest.approx(limit, rel=1e-13)
    assert levin(sums, "t") == pytest.approx(limit, rel=1e-13)


def test_sablonniere_modifier_is_applied_and_helps_logarithmic_sequences():
    limit = math.pi**2 / 6
    plain = abs(wynn_epsilon(BASEL_SUMS, 3) - limit)
    modified = abs(wynn_epsilon(BASEL_SUMS, 3, modifier="sablonniere") - limit)
    assert modified < plain / 100
    assert abs(levin(BASEL_SUMS, "u") - limit) < 1e-9


def test_order_two_wynn_sums_two_geometric_components_exactly():
    sums = [3.0 + 2.0 * 0.5**m - 1.0 * 0.2**m for m in range(5)]
    assert wynn_epsilon(sums, 2) == pytest.approx(3.0, rel=1e-12)
    assert abs(wynn_epsilon(sums, 1) - 3.0) > 1e-6


@given(
    limit=st.floats(-10, 10),
    amplitude=st.floats(0.1, 10),
    ratio=st.floats(-0.9, 0.9).filter(lambda r: abs(r) > 0.05),
)
def test_one_component_is_removed_exactly(limit, amplitude, ratio):
    sums = [limit + amplitude * ratio**m for m in range(3)]
    assert aitken(sums) == pytest.approx(limit, abs=1e-9 * max(1, amplitude))
    assert wynn_epsilon(sums, 1) == pytest.approx(limit, abs=1e-9 * max(1, amplitude))


def _vector_series(backend, columns=None):
    """Partial sums of sum_n Z^n b (Neumann) for a diagonal Z, and the limit."""
    z = np.linspace(-0.6, 0.9, 8)
    b = np.random.default_rng(0).standard_normal(8 if columns is None else (8, columns))
    zz = z if columns is None else z[:, None]
    sums, term, total = [], b.copy(), np.zeros_like(b)
    for _ in range(25):
        total = total + term
        sums.append(total.copy())
        term = zz * term
    limit = b / (1 - zz)
    return [backend.asarray(s) for s in sums], limit


@pytest.mark.parametrize("columns", [None, 3])
def test_vector_series_on_every_backend(backend, columns):
    sums, limit = _vector_series(backend, columns)
    plain_error = np.linalg.norm(backend.to_numpy(sums[-1]) - limit)
    results = {
        "wynn": wynn_epsilon(sums, 2),
        "wynn-componentwise": wynn_epsilon(sums, 2, inverse="componentwise"),
        "levin": levin(sums[-6:], "t"),
        "aitken": aitken(sums),
    }
    for name, value in results.items():
        assert value.shape == sums[-1].shape, name
        assert value.dtype == sums[-1].dtype, name
        error = np.linalg.norm(backend.to_numpy(value) - limit)
        assert error < plain_error, name
    # Sablonniere's weights target logarithmic convergence (they hurt on this linear one), but
    # they must run on vectors of every backend.
    modified = wynn_epsilon(sums, 2, modifier="sablonniere")
    assert modified.shape == sums[-1].shape
    assert np.all(np.isfinite(backend.to_numpy(modified)))
    wynn_error = np.linalg.norm(backend.to_numpy(results["wynn"]) - limit)
    assert wynn_error < plain_error / 10


def test_stacked_array_input_equals_list_input():
    sums = np.array([[1.0, 2.0], [1.5, 2.5], [1.75, 2.6], [1.875, 2.65]])
    np.testing.assert_allclose(wynn_epsilon(sums, 1), wynn_epsilon(list(sums), 1))


def test_block_columns_are_independent():
    rng = np.random.default_rng(1)
    sums = np.cumsum(rng.standard_normal((7, 5, 2)) * 0.5 ** np.arange(7)[:, None, None], axis=0)
    block = wynn_epsilon(sums, 2)
    for j in range(2):
        np.testing.assert_allclose(block[:, j], wynn_epsilon(sums[:, :, j], 2), rtol=1e-13)


def test_constant_sequence_falls_back_to_the_last_entry():
    assert wynn_epsilon([2.0, 2.0, 2.0], 1) == 2.0
    assert aitken([1.0, 1.0, 1.0]) == 1.0
    assert levin([5.0, 5.0, 5.0]) == 5.0
    vectors = [np.array([1.0, 2.0])] * 5
    np.testing.assert_array_equal(wynn_epsilon(vectors, 2), vectors[0])


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: wynn_epsilon([1.0, 2.0], 1), ValueError),
        (lambda: wynn_epsilon([1.0, 2.0, 3.0], 0), ValueError),
        (lambda: wynn_epsilon([1.0, 2.0, 3.0], 1, inverse="other"), ValueError),
        (lambda: wynn_epsilon([1.0, 2.0, 3.0], 1, modifier="sablonnier"), ValueError),
        (lambda: levin([1.0, 2.0, 3.0], "w"), ValueError),
        (lambda: levin([1.0, 2.0, 3.0], "v"), ValueError),
        (lambda: levin([1.0, 2.0, 3.0], beta=0.0), ValueError),
        (lambda: aitken([1.0, 2.0]), ValueError),
        (lambda: aitken([np.ones(2), np.ones(3), np.ones(2)]), ValueError),
        (lambda: aitken(["a", "b", "c"]), TypeError),
        (lambda: aitken(np.ones((3, 2, 2, 2))), ValueError),
    ],
)
def test_bad_input(call, error):
    with pytest.raises(error):
        call()


def test_mixed_libraries_are_refused():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="Mismatched"):
        aitken([np.ones(2), torch.ones(2, dtype=torch.float64), np.ones(2)])


def test_wynn_keeps_an_exact_lower_order_limit() -> None:
    """A geometric series is summed exactly by order 1; higher orders hit a zero difference
    and must keep that limit, not fall back to the last partial sum."""
    import numpy as np

    from hvpseries.acceleration import wynn_epsilon

    partial_sums = [1.0, 1.5, 1.75, 1.875, 1.9375]
    assert wynn_epsilon(partial_sums, 2) == pytest.approx(2.0, rel=1e-14)
    long_sums = list(np.cumsum(0.5 ** np.arange(15)))
    for order in (3, 5, 7):
        assert wynn_epsilon(long_sums, order) == pytest.approx(2.0, rel=1e-14)
    vectors = [np.array([1.0, 2.0]) * s for s in partial_sums]
    np.testing.assert_allclose(wynn_epsilon(vectors, 2), [2.0, 4.0], rtol=1e-14)


@pytest.mark.parametrize(
    "accelerate",
    [wynn_epsilon, lambda s: wynn_epsilon(s, 2), lambda s: levin(s, "t"), lambda s: levin(s, "v")],
)
def test_a_fallback_result_is_a_new_array_not_an_input(accelerate) -> None:
    # When the transform is undefined (a constant sequence: zero differences), the result is
    # the last entry's value, in an array of its own: writing to it must not change the input.
    sequence = [np.array([1.0, 2.0]) for _ in range(6)]
    result = accelerate(sequence)
    np.testing.assert_array_equal(result, [1.0, 2.0])
    assert not any(np.shares_memory(result, entry) for entry in sequence)
