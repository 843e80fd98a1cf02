"""The front end's f(A) b on a fixed-seed fuzz of hard spectra: SUCCESS holds the tolerance."""

from __future__ import annotations

import pytest

from tests.fuzz import METHOD_CALLS, method_summary, summary


def check(count: int, seed: int) -> None:
    counts, above = summary(count, seed)
    # No false SUCCESS (true error above 10x the tolerance), and SUCCESS above 1x in under 1%.
    assert counts["SUCCESS, error > 10 rtol"] == 0, above
    assert counts["SUCCESS, error > rtol"] < 0.01 * count, above
    # The certificate must not turn the fuzz into refusals: most cases succeed.
    assert counts["SUCCESS"] >= 0.85 * count, counts


def check_methods(count: int, seed: int) -> None:
    counts, above = method_summary(count, seed)
    assert sum(tally["SUCCESS, error > 10 rtol"] for tally in counts.values()) == 0, above
    assert sum(tally["SUCCESS, error > rtol"] for tally in counts.values()) < 0.01 * count, above
    # Every method ran and succeeded somewhere (the hard families defeat some of them often:
    # Chebyshev and the series need many terms where the spectrum comes close to 0).
    assert {call.name for call in METHOD_CALLS} == set(counts), counts
    assert all(tally["SUCCESS"] > 0 for tally in counts.values()), counts


def test_fuzz_fixed_seed() -> None:
    check(250, seed=0)


def test_fuzz_every_method_fixed_seed() -> None:
    check_methods(200, seed=0)


@pytest.mark.slow
def test_fuzz_large() -> None:
    check(5000, seed=2)


@pytest.mark.slow
def test_fuzz_every_method_large() -> None:
    check_methods(3000, seed=5)
