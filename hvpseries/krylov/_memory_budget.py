"""How many basis vectors a stored Lanczos basis may hold before it crowds out the machine."""

from __future__ import annotations

import os
from typing import Any

from .._core._array_api import backend_name, device

__all__ = ["stored_vectors_that_fit"]

# The stored basis may take this fraction of the memory free when a solve starts: the rest is
# left to the operator, the caller and the second pass.
_BUDGET_FRACTION = 0.5


def stored_vectors_that_fit(xp: Any, b: Any) -> int | None:
    """Return how many vectors like ``b`` fit in half the free memory of ``b``'s device.

    ``None`` where the free memory cannot be read, and for PyTorch tensors while
    ``torch.distributed`` is initialised (the ranks of a data-parallel operator would have to
    agree on the switch): then nothing is limited. The free memory is the device's for CUDA
    arrays (with what PyTorch's and CuPy's allocators hold in reserve counted as free) and
    the host's otherwise (Linux ``MemAvailable``, capped by the cgroup's limit in a
    container; else the free physical pages).
    """
    if backend_name(xp) == "torch" and _distributed_torch():
        return None
    free = _free_bytes(xp, b)
    if free is None:
        return None
    bytes_per_vector = max(int(b.shape[0]), 1) * (xp.finfo(b.dtype).bits // 8)
    return max(int(_BUDGET_FRACTION * free) // bytes_per_vector, 1)


def _free_bytes(xp: Any, b: Any) -> int | None:
    library = backend_name(xp)
    if library == "torch" and b.is_cuda:
        import torch

        where = device(b)
        cached = torch.cuda.memory_reserved(where) - torch.cuda.memory_allocated(where)
        return int(torch.cuda.mem_get_info(where)[0]) + int(cached)
    if library == "cupy":
        import cupy

        with cupy.cuda.Device(b.device.id):
            pooled = cupy.get_default_memory_pool().free_bytes()
            return int(cupy.cuda.runtime.memGetInfo()[0]) + int(pooled)
    return _host_free_bytes()


def _distributed_torch() -> bool:
    import torch.distributed as dist

    return bool(dist.is_available() and dist.is_initialized())


def _host_free_bytes() -> int | None:
    free = _meminfo_available()
    if free is None:
        try:
            free = int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
        except (AttributeError, ValueError, OSError):
            return None
    limit = _cgroup_free()
    return free if limit is None else min(free, limit)


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


# (limit, usage, statistics, the page cache the kernel reclaims first) of cgroup v2 and v1: a
# container's free memory is its limit minus what it uses, not counting that cache
_CGROUP_FILES = (
    (
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory.current",
        "/sys/fs/cgroup/memory.stat",
        "inactive_file",
    ),
    (
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        "/sys/fs/cgroup/memory/memory.stat",
        "total_inactive_file",
    ),
)


def _cgroup_free() -> int | None:
    for limit_file, usage_file, stat_file, reclaimable_key in _CGROUP_FILES:
        try:
            with open(limit_file, encoding="ascii") as f:
                limit = f.read().strip()
            with open(usage_file, encoding="ascii") as f:
                usage = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:  # "max" or a huge v1 value: no limit
            usage -= min(_cgroup_statistic(stat_file, reclaimable_key), usage)
            return max(int(limit) - usage, 0)
    return None


def _cgroup_statistic(stat_file: str, key: str) -> int:
    """Return the value of ``key`` in a cgroup's ``memory.stat`` (0 if it cannot be read)."""
    try:
        with open(stat_file, encoding="ascii") as f:
            for line in f:
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0
