"""The front end's f(A) b on a fixed-seed fuzz of hard spectra: SUCCESS holds the tolerance."""

from __future__ import annotations

import pytest

from tests.fuzz import summary


def check(count: int, seed: int) -> None:
    counts, above = summary(count, seed)
    # No false SUCCESS (true error above 10x the tolerance), and SUCCESS above 1x in under 1%.
    assert counts["SUCCESS, error > 10 rtol"] == 0, above
    assert counts["SUCCESS, error > rtol"] < 0.01 * count, above
    # The certificate must not turn the fuzz into refusals: most cases succeed.
    assert counts["SUCCESS"] >= 0.85 * count, counts


def test_fuzz_fixed_seed() -> None:
    check(250, seed=0)


@pytest.mark.slow
def test_fuzz_large() -> None:
    check(5000, seed=2)
