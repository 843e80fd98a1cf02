"""A stored Lanczos basis that would not fit in memory gives way to two passes."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
import scipy.sparse

import hvpseries as hs
from hvpseries.krylov import _memory_budget

BUDGET = "hvpseries.krylov._funm_lanczos.stored_vectors_that_fit"


def indefinite_problem():
    eigenvalues = np.concatenate([np.linspace(-2.0, -0.1, 100), np.linspace(0.1, 3.0, 900)])
    b = np.random.default_rng(0).standard_normal(eigenvalues.size)
    return scipy.sparse.diags(eigenvalues).tocsr(), b, b / (np.abs(eigenvalues) + 0.01)


def relative_error(x, exact) -> float:
    return float(np.linalg.norm(x - exact) / np.linalg.norm(exact))


def test_a_basis_over_the_budget_switches_to_two_passes() -> None:
    # About 300 steps are needed; memory for 40 vectors: the run restarts with two passes.
    a, b, exact = indefinite_problem()
    stored = hs.abs_inv(a, b, damping=0.01, rtol=1e-8)
    assert stored.info["memory"] == "store"
    with mock.patch(BUDGET, return_value=40):
        result = hs.abs_inv(a, b, damping=0.01, rtol=1e-8)
    assert result.status is hs.Status.SUCCESS, result
    assert relative_error(result.x, exact) <= 1e-8
    assert result.info["memory"] == "two-pass"
    assert result.info["reorthogonalize"] == "none"
    assert result.info["stored_before_switch"] == 40
    # the 40 products spent before the switch are counted, and two passes cost twice
    assert result.n_matvec > 40 + 2 * 0.9 * stored.n_matvec


def test_a_callback_keeps_the_stored_basis() -> None:
    # Iterates need the basis: the budget is not applied and the callback sees them.
    a, b, exact = indefinite_problem()
    seen = []
    with mock.patch(BUDGET, return_value=40):
        result = hs.abs_inv(a, b, damping=0.01, rtol=1e-8, callback=seen.append)
    assert result.info["memory"] == "store"
    assert result.status is hs.Status.SUCCESS
    assert seen and relative_error(result.x, exact) <= 1e-8


def test_a_basis_within_the_budget_is_kept() -> None:
    a, b, _ = indefinite_problem()
    with mock.patch(BUDGET, return_value=10_000):
        result = hs.abs_inv(a, b, damping=0.01, rtol=1e-8)
    assert result.info["memory"] == "store"
    assert "stored_before_switch" not in result.info


@pytest.mark.parametrize(("dtype", "vectors"), [(np.float64, 500), (np.float32, 1000)])
def test_the_budget_is_half_the_free_memory(dtype, vectors) -> None:
    xp = hs.aslinearoperator(np.eye(3)).xp
    with mock.patch.object(_memory_budget, "_free_bytes", return_value=8_000_000):
        assert _memory_budget.stored_vectors_that_fit(xp, np.zeros(1000, dtype=dtype)) == vectors
    with mock.patch.object(_memory_budget, "_free_bytes", return_value=None):
        assert _memory_budget.stored_vectors_that_fit(xp, np.zeros(1000, dtype=dtype)) is None


def test_the_host_free_memory_is_read() -> None:
    free = _memory_budget._host_free_bytes()
    assert free is None or free > 0


def test_block_columns_switch_each_and_say_so() -> None:
    a, b, exact = indefinite_problem()
    block = np.stack([b, 2.0 * b], axis=1)
    with mock.patch(BUDGET, return_value=40):
        result = hs.abs_inv(a, block, damping=0.01, rtol=1e-8)
    assert result.status is hs.Status.SUCCESS
    assert result.info["memory"] == ["two-pass", "two-pass"]
    assert result.info["stored_before_switch"] == [40, 40]
    assert relative_error(result.x[:, 1], 2.0 * exact) <= 1e-8


def test_progress_counts_both_attempts_and_the_basis_is_freed() -> None:
    # After the switch no stored basis may stay alive (at n = 1e6 it held 12 GB through the
    # whole second attempt), and progress goes on counting from the first attempt's matvecs.
    import gc

    from hvpseries.krylov._lanczos import _Basis

    a, b, _ = indefinite_problem()
    reports, alive = [], []

    def progress(n_matvec, estimate):
        reports.append(n_matvec)
        if n_matvec > 40:
            alive.append(sum(type(o) is _Basis and len(o) > 0 for o in gc.get_objects()))

    with mock.patch(BUDGET, return_value=40):
        result = hs.abs_inv(a, b, damping=0.01, rtol=1e-8, progress=progress)
    assert result.info["memory"] == "two-pass"
    assert reports == sorted(reports) and reports[-1] <= result.n_matvec
    assert alive and max(alive) == 0


def test_a_reorthogonalization_you_choose_is_kept() -> None:
    a, b, _ = indefinite_problem()
    with mock.patch(BUDGET, return_value=40):
        result = hs.abs_inv(a, b, damping=0.01, rtol=1e-8, reorthogonalize="full")
    assert result.info["memory"] == "store" and result.info["reorthogonalize"] == "full"


def test_no_budget_while_torch_distributed_is_initialised() -> None:
    # The ranks of a data-parallel operator would have to agree on the switch.
    torch = pytest.importorskip("torch")
    xp = hs.aslinearoperator(torch.eye(3)).xp
    with mock.patch.object(_memory_budget, "_distributed_torch", return_value=True):
        assert _memory_budget.stored_vectors_that_fit(xp, torch.zeros(10)) is None


def test_a_container_limit_caps_the_host_memory() -> None:
    with (
        mock.patch.object(_memory_budget, "_meminfo_available", return_value=10**10),
        mock.patch.object(_memory_budget, "_cgroup_free", return_value=10**9),
    ):
        assert _memory_budget._host_free_bytes() == 10**9


@pytest.mark.parametrize("reclaimable", [0, 3 * 10**9])
def test_cgroup_free_memory_does_not_count_reclaimable_page_cache(
    tmp_path, monkeypatch, reclaimable
):
    limit, usage, stat = tmp_path / "memory.max", tmp_path / "memory.current", tmp_path / "stat"
    limit.write_text(f"{8 * 10**9}\n")
    usage.write_text(f"{5 * 10**9}\n")
    stat.write_text(f"anon 2000000000\ninactive_file {reclaimable}\nactive_file 7\n")
    files = ((str(limit), str(usage), str(stat), "inactive_file"),)
    monkeypatch.setattr(_memory_budget, "_CGROUP_FILES", files)
    # 8 GB limit, 5 GB used of which `reclaimable` is page cache the kernel drops first
    assert _memory_budget._cgroup_free() == 3 * 10**9 + reclaimable


def test_cgroup_without_a_limit_sets_none(tmp_path, monkeypatch):
    limit, usage = tmp_path / "memory.max", tmp_path / "memory.current"
    limit.write_text("max\n")
    usage.write_text("123\n")
    files = ((str(limit), str(usage), str(tmp_path / "missing"), "inactive_file"),)
    monkeypatch.setattr(_memory_budget, "_CGROUP_FILES", files)
    assert _memory_budget._cgroup_free() is None
