"""The array backends the test-suite runs on, with dtype-keyed tolerances."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Backend:
    """One array library, dtype and device that tests run on."""

    library: str
    dtype_name: str
    device_name: str = "cpu"

    @property
    def id(self) -> str:
        suffix = "" if self.device_name == "cpu" else f"-{self.device_name}"
        return f"{self.library}-{self.dtype_name}{suffix}"

    @property
    def xp(self) -> Any:
        if self.library == "array_api_strict":
            return importlib.import_module("array_api_strict")
        return importlib.import_module(f"array_api_compat.{self.library}")

    @property
    def dtype(self) -> Any:
        return getattr(self.xp, self.dtype_name)

    @property
    def device(self) -> Any:
        if self.library == "torch":
            import torch

            return torch.device(self.device_name)
        if self.library == "cupy":
            import cupy

            return cupy.cuda.Device(0)
        if self.library == "array_api_strict":
            return self.xp.Device("CPU_DEVICE")
        return "cpu"

    @property
    def eps(self) -> float:
        return float(np.finfo(self.dtype_name.replace("complex", "float")).eps)

    @property
    def rtol(self) -> float:
        """A tolerance for results that should be exact up to rounding: ~ sqrt(eps) * small."""
        return 1e-10 if self.dtype_name in ("float64", "complex128") else 1e-4

    def asarray(self, array: Any, dtype: Any = None) -> Any:
        """Convert a NumPy array to this backend (and dtype, unless one is given)."""
        array = np.asarray(array)
        target = self.dtype if dtype is None else dtype
        if self.library == "torch":
            import torch

            return torch.as_tensor(array, device=self.device).to(target)
        return self.xp.asarray(array, dtype=target, device=self.device)

    def to_numpy(self, x: Any) -> np.ndarray:
        if self.library == "torch":
            return x.detach().cpu().numpy()
        if self.library == "cupy":
            return x.get()
        if self.library == "array_api_strict":
            return np.from_dlpack(x)
        return np.asarray(x)


def backend_available(backend: Backend) -> bool:
    try:
        importlib.import_module(backend.library)
    except ImportError:
        return False
    if backend.library == "cupy":
        import cupy

        try:
            return cupy.cuda.runtime.getDeviceCount() > 0
        except Exception:  # no driver
            return False
    if backend.library == "torch" and backend.device_name != "cpu":
        import torch

        return torch.cuda.is_available()
    return True


CPU_BACKENDS = [
    Backend("numpy", "float64"),
    Backend("numpy", "float32"),
    Backend("array_api_strict", "float64"),
    Backend("torch", "float64"),
    Backend("torch", "float32"),
]
GPU_BACKENDS = [
    Backend("cupy", "float64"),
    Backend("cupy", "float32"),
    Backend("torch", "float64", "cuda"),
    Backend("torch", "float32", "cuda"),
]
