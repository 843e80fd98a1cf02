"""The multi-process launcher itself: results in rank order, errors and hangs are reported."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("torch")

from tests.distributed.launch import run_on_ranks


def _sum_of_ranks(rank, world_size):
    import torch
    import torch.distributed as dist

    value = torch.tensor([float(rank)])
    dist.all_reduce(value)
    return rank, world_size, float(value)


def _fails_on_rank_one(rank, world_size):
    if rank == 1:
        message = "rank one fails on purpose"
        raise ValueError(message)
    return rank


def _hangs_on_rank_one(rank, world_size):
    if rank == 1:
        time.sleep(60)
    return rank


def test_results_come_back_in_rank_order():
    assert run_on_ranks(_sum_of_ranks, 3) == [(r, 3, 3.0) for r in range(3)]


def test_an_exception_on_one_rank_fails_with_its_traceback():
    with pytest.raises(RuntimeError, match=r"(?s)rank 1 raised.*rank one fails on purpose"):
        run_on_ranks(_fails_on_rank_one, 2)


def test_a_hung_rank_is_killed_at_the_deadline():
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="did not finish"):
        run_on_ranks(_hangs_on_rank_one, 2, deadline=5.0)
    assert time.monotonic() - start < 30
