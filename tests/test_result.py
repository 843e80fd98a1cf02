"""SolveResult, Status and ConvergenceError."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import hvpseries as hs


def test_result_is_frozen_and_info_is_read_only() -> None:
    result = hs.SolveResult(
        x=np.zeros(2), status=hs.Status.SUCCESS, n_matvec=1, n_iter=1, info={"a": 1}
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.n_matvec = 3
    with pytest.raises(TypeError):
        result.info["a"] = 2


def test_status_messages_are_distinct_and_actionable() -> None:
    values = [status.value for status in hs.Status]
    assert len(set(values)) == len(values)
    for status in hs.Status:
        if not status.converged:
            assert any(
                word in status.value for word in ("use", "increase", "check", "try", "loosen")
            )


def test_converged_statuses() -> None:
    assert {s for s in hs.Status if s.converged} == {hs.Status.SUCCESS, hs.Status.COMPLETED}


def test_raise_for_status() -> None:
    good = hs.SolveResult(x=np.zeros(1), status=hs.Status.COMPLETED, n_matvec=0, n_iter=0)
    assert good.raise_for_status() is good
    bad = hs.SolveResult(x=np.zeros(1), status=hs.Status.NONFINITE, n_matvec=0, n_iter=0)
    with pytest.raises(hs.ConvergenceError, match="NONFINITE") as caught:
        bad.raise_for_status()
    assert caught.value.result is bad
    assert bad.message == hs.Status.NONFINITE.value


def test_status_must_be_a_status() -> None:
    with pytest.raises(TypeError, match=r"hvpseries\.Status"):
        hs.SolveResult(x=None, status="ok", n_matvec=0, n_iter=0)
