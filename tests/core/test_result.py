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
    # a fixed budget that was used up is usable, but nothing was verified: not converged
    assert {s for s in hs.Status if s.converged} == {hs.Status.SUCCESS}
    assert {s for s in hs.Status if s.usable} == {hs.Status.SUCCESS, hs.Status.COMPLETED}


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


def test_results_and_errors_pickle_and_copy() -> None:
    import copy
    import pickle

    result = hs.SolveResult(
        x=np.arange(3.0), status=hs.Status.MAX_ITERATIONS, n_matvec=5, n_iter=5, info={"a": 1}
    )
    for clone in (pickle.loads(pickle.dumps(result)), copy.deepcopy(result)):
        assert clone.status is hs.Status.MAX_ITERATIONS and dict(clone.info) == {"a": 1}
        np.testing.assert_array_equal(clone.x, result.x)
    error = pickle.loads(pickle.dumps(hs.ConvergenceError(result)))
    assert error.result.n_matvec == 5
    assert copy.deepcopy(hs.ConvergenceError(result)).result.n_iter == 5
