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

    ``None`` where the free memory cannot be read (then nothing is limited). The free memory
    is the device's for CUDA arrays (PyTorch, CuPy) and the host's otherwise (Linux
    ``MemAvailable``, else the free physical pages).
    """
    free = _free_bytes(xp, b)
    if free is None:
        return None
    bytes_per_vector = max(int(b.shape[0]), 1) * (xp.finfo(b.dtype).bits // 8)
    return max(int(_BUDGET_FRACTION * free) // bytes_per_vector, 1)


def _free_bytes(xp: Any, b: Any) -> int | None:
    library = backend_name(xp)
    if library == "torch" and b.is_cuda:
        import torch

        return int(torch.cuda.mem_get_info(device(b))[0])
    if library == "cupy":
        import cupy

        with cupy.cuda.Device(b.device.id):
            return int(cupy.cuda.runtime.memGetInfo()[0])
    return _host_free_bytes()


def _host_free_bytes() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None
