"""The numerical search for kinks, poles and domain edges of an undeclared f."""

from __future__ import annotations

import numpy as np
import pytest

from hvpseries.krylov._analyticity import analyticity

KINKED = [
    ("abs", np.abs, (0.0,)),
    ("sign", np.sign, (0.0,)),
    ("damped-abs-inv", lambda t: 1.0 / (np.abs(t) + 0.1), (0.0,)),
    ("abs-inv", lambda t: 1.0 / np.abs(t), (0.0,)),
    ("log-abs", lambda t: np.log(np.abs(t)), (0.0,)),
    ("relu-shifted", lambda t: np.maximum(t - 0.3, 0.0), (0.3,)),
    ("off-grid", lambda t: np.abs(t - 1.0 / 3.0), (1.0 / 3.0,)),
    ("two", lambda t: np.abs(t - 1.0) + np.abs(t + 2.5), (-2.5, 1.0)),
    ("faint", lambda t: 1.0 / (np.abs(t) + 1e3), (0.0,)),
]


@pytest.mark.parametrize(("name", "f", "kinks"), KINKED, ids=[k[0] for k in KINKED])
@pytest.mark.parametrize("reach", [20.0, 1e4])
def test_kinks_are_found(name, f, kinks, reach) -> None:
    found = analyticity(f, -reach, reach)
    assert found is not None
    np.testing.assert_allclose(found.kinks, kinks, rtol=1e-9, atol=1e-9 * reach)
    assert found.domain_starts == found.domain_ends == ()


ANALYTIC = [
    ("exp", np.exp),
    ("inverse", lambda t: 1.0 / t),
    ("inverse-square", lambda t: 1.0 / t**2),
    ("tanh", np.tanh),
    ("cubic", lambda t: t**3 - t),
    ("oscillating", lambda t: np.sin(5.0 * t)),
    ("near-pole", lambda t: 1.0 / np.sqrt(t * t + 1e-4)),
]


@pytest.mark.parametrize(("name", "f"), ANALYTIC, ids=[k[0] for k in ANALYTIC])
def test_analytic_functions_and_poles_have_no_kink(name, f) -> None:
    found = analyticity(f, -20.0, 20.0)
    assert found is not None
    assert found.kinks == ()


DOMAINS = [
    ("sqrt", np.sqrt, 0.0),
    ("inv-sqrt", lambda t: 1.0 / np.sqrt(t), 0.0),
    ("log", np.log, 0.0),
    ("log1p", np.log1p, -1.0),
    ("shifted-power", lambda t: np.maximum(t + 0.01, 0.0) ** -0.5, -0.01),
]


@pytest.mark.parametrize(("name", "f", "start"), DOMAINS, ids=[k[0] for k in DOMAINS])
def test_domain_edges_are_not_kinks(name, f, start) -> None:
    found = analyticity(f, -20.0, 20.0)
    assert found is not None
    assert found.kinks == ()
    # A branch point may show as two runs of singular intervals, a few 1e-9 apart.
    assert found.domain_starts
    np.testing.assert_allclose(found.domain_starts, start, atol=1e-8)


def test_overflow_ends_the_domain() -> None:
    found = analyticity(np.exp, -1e4, 1e4)
    assert found is not None
    assert found.kinks == ()
    np.testing.assert_allclose(found.domain_ends, np.log(np.finfo(np.float64).max), rtol=1e-6)


def test_every_jump_of_a_staircase_is_found() -> None:
    found = analyticity(np.floor, -50.0, 50.0)
    assert found is not None
    np.testing.assert_array_equal(found.kinks, np.arange(-49.0, 50.0))


@pytest.mark.parametrize(
    "f",
    [
        lambda t: t + 1e-6 * np.random.default_rng(0).standard_normal(t.shape),
        lambda t: np.floor(1000.0 * t),
    ],
    ids=["noise", "fine-staircase"],
)
def test_functions_too_rough_to_analyse_are_reported(f) -> None:
    assert analyticity(f, -50.0, 50.0) is None


def test_a_function_that_refuses_points_outside_its_domain() -> None:
    # Points where f raises count as outside its domain, like NaN values.
    def f(t):
        if np.any(t <= 0):
            message = "defined for t > 0 only"
            raise ValueError(message)
        return 1.0 / np.sqrt(t)

    found = analyticity(f, -20.0, 20.0)
    assert found is not None
    assert found.kinks == ()
    np.testing.assert_allclose(found.domain_starts, 0.0, atol=1e-8)


@pytest.mark.parametrize("order", [3, 4, 6])
@pytest.mark.parametrize("kink", [0.0, 0.3, 1.7])
@pytest.mark.parametrize("reach", [5.0, 22.0, 200.0])
def test_kinks_of_higher_order_are_found(order, kink, reach) -> None:
    # max(t - c, 0)^p: its signature fades below rounding before the bisection reaches the
    # floor (review: 8-9 of 12 missed for p >= 4 before the narrow-width rule).
    found = analyticity(lambda t: np.maximum(t - kink, 0.0) ** order, -reach, reach)
    assert found is not None
    np.testing.assert_allclose(found.kinks, [kink], atol=1e-6)
