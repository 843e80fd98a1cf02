"""The one place where hvpseries meets array libraries.

Every algorithm in hvpseries obtains a namespace ``xp`` from this module and then calls only
``xp.*`` functions of the Python array API standard, so the same code runs on NumPy, PyTorch
(CPU and CUDA), CuPy and ``array_api_strict``. Nothing here moves data between devices.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

import array_api_compat
from array_api_compat import device, size

__all__ = [
    "array_namespace",
    "as_python_float",
    "backend_name",
    "check_floating_dtype",
    "device",
    "dtype_name",
    "epsilon",
    "host_values",
    "is_array",
    "is_complex_dtype",
    "is_cupy",
    "is_numpy",
    "is_torch",
    "namespace_like",
    "numpy_namespace",
    "real_dtype",
    "same_device",
    "size",
]


def array_namespace(*arrays: Any) -> ModuleType:
    """Return the array API namespace shared by ``arrays``.

    Raises
    ------
    TypeError
        If the arrays come from different libraries (say NumPy and PyTorch), naming both, or if an
        argument is not an array of a supported library.
    """
    if not arrays:
        message = "array_namespace needs at least one array"
        raise TypeError(message)
    try:
        return array_api_compat.array_namespace(*arrays)
    except TypeError as error:
        names = sorted({_library_of(a) for a in arrays if is_array(a)})
        if len(names) > 1 and all(is_array(a) for a in arrays):
            message = (
                f"Mismatched array namespaces: got arrays from {' and '.join(names)}. "
                "Convert all inputs to one array library (and one device) first."
            )
        else:
            offending = next((a for a in arrays if not is_array(a)), arrays[0])
            message = (
                f"expected an array of NumPy, PyTorch, CuPy or another array-API library, "
                f"got {type(offending).__name__}"
            )
        raise TypeError(message) from error


def numpy_namespace() -> ModuleType:
    """Return the array API namespace of NumPy (the default for host-only operators)."""
    import array_api_compat.numpy as xp_numpy

    return xp_numpy


def is_array(obj: Any) -> bool:
    """Return whether ``obj`` is an array of an array-API-compatible library."""
    return array_api_compat.is_array_api_obj(obj)


def backend_name(xp: ModuleType) -> str:
    """Return a short library name for a namespace: ``numpy``, ``torch``, ``cupy``, ...."""
    if array_api_compat.is_numpy_namespace(xp):
        return "numpy"
    if array_api_compat.is_torch_namespace(xp):
        return "torch"
    if array_api_compat.is_cupy_namespace(xp):
        return "cupy"
    if array_api_compat.is_array_api_strict_namespace(xp):
        return "array_api_strict"
    return xp.__name__.split(".")[-1]


def is_numpy(xp: ModuleType) -> bool:
    """Return whether ``xp`` is the NumPy namespace."""
    return array_api_compat.is_numpy_namespace(xp)


def is_torch(xp: ModuleType) -> bool:
    """Return whether ``xp`` is the PyTorch namespace."""
    return array_api_compat.is_torch_namespace(xp)


def is_cupy(xp: ModuleType) -> bool:
    """Return whether ``xp`` is the CuPy namespace."""
    return array_api_compat.is_cupy_namespace(xp)


def same_device(first: Any, second: Any) -> bool:
    """Return whether two device objects name the same device."""
    return first == second or str(first) == str(second)


def dtype_name(dtype: Any) -> str:
    """Return a readable name (``float32``, ``complex128``) for a dtype of any library."""
    return str(dtype).rsplit(".", 1)[-1].strip("'>")


@functools.lru_cache(maxsize=64)
def is_complex_dtype(xp: ModuleType, dtype: Any) -> bool:
    """Return whether ``dtype`` is a complex floating dtype (cached: solvers ask every step)."""
    return bool(xp.isdtype(dtype, "complex floating"))


def requires_grad(x: Any) -> bool:
    """Return whether autograd records operations on ``x`` (a torch tensor that requires grad).

    Solvers that update their vectors in place fall back to new arrays for such inputs: an
    in-place change of a tensor autograd saved breaks the backward pass.
    """
    return bool(getattr(x, "requires_grad", False))


def cast_without_loss(xp: ModuleType, x: Any, dtype: Any, what: str) -> Any:
    """Return ``x`` in the operator's ``dtype``; raise ``TypeError`` if that would lose precision.

    ``what`` names ``x`` in the message (for example ``"b"``): a float64 ``b`` is not rounded
    to a float32 operator behind the caller's back.
    """
    if x.dtype == dtype:
        return x
    if xp.result_type(x.dtype, dtype) != dtype:
        message = (
            f"{what} has dtype {dtype_name(x.dtype)} but the operator computes in "
            f"{dtype_name(dtype)}; cast it to {dtype_name(dtype)} or build the operator in "
            f"{dtype_name(x.dtype)} (no silent loss of precision)"
        )
        raise TypeError(message)
    return xp.astype(x, dtype)


def check_floating_dtype(xp: ModuleType, dtype: Any, what: str) -> None:
    """Raise ``TypeError`` unless ``dtype`` is a real or complex floating dtype.

    ``what`` names the offending input in the message (for example ``"b"``).
    """
    try:
        floating = xp.isdtype(dtype, ("real floating", "complex floating"))
    except (TypeError, AttributeError, ValueError):
        message = (
            f"{what} has dtype {dtype!r}, which is not a dtype of {backend_name(xp)}; give a "
            f"dtype of the library the operator works with (e.g. {backend_name(xp)}.float64)"
        )
        raise TypeError(message) from None
    if not floating:
        message = (
            f"{what} has dtype {dtype_name(dtype)}, but hvpseries works in floating point "
            "(float32, float64, complex64, complex128); convert it or give a floating dtype"
        )
        raise TypeError(message)


def real_dtype(xp: ModuleType, dtype: Any) -> Any:
    """Return the real floating dtype with the precision of ``dtype``."""
    if dtype == xp.complex64:
        return xp.float32
    if dtype == xp.complex128:
        return xp.float64
    return dtype


def epsilon(xp: ModuleType, dtype: Any) -> float:
    """Return the machine epsilon of the (real part of the) floating dtype ``dtype``."""
    return float(xp.finfo(real_dtype(xp, dtype)).eps)


def add_scaled(y: Any, x: Any, alpha: float) -> Any:
    """Return ``y + alpha * x`` as a new array (one pass over memory on PyTorch).

    Other libraries compute ``alpha * x`` and add ``y`` in place: two passes, one temporary.
    """
    if array_api_compat.is_torch_array(y):
        import torch

        return torch.add(y, x, alpha=alpha)
    out = x * alpha
    out += y
    return out


def host_values(x: Any) -> Any:
    """Copy a small array (per-column scalars, eigenvalues) to a 1-D NumPy float64 array.

    One transfer: ``float()`` for a 0-d array, DLPack for other arrays on the CPU, ``.cpu()``
    for PyTorch and ``.get()`` for CuPy arrays on a GPU; element by element only for other
    device libraries. PyTorch tensors are detached first. For host-side
    bookkeeping of a few numbers, never for vectors of the problem's size.
    """
    import numpy as np

    if x.ndim == 0:  # one number: float() is the one transfer, and the cheapest
        return np.array([float(x.detach() if _library_of(x) == "torch" else x)])
    try:
        values = np.from_dlpack(x)
    except (TypeError, RuntimeError, BufferError, ValueError, AttributeError):
        library = _library_of(x)
        if library == "torch":
            values = x.detach().cpu().numpy()
        elif library == "cupy":
            values = x.get()
        else:
            flat = [float(x[i]) for i in range(x.shape[0])] if x.ndim else [float(x)]
            values = np.array(flat)
    return np.atleast_1d(np.asarray(values, dtype=np.float64))


def as_python_float(value: Any) -> float:
    """Return a 0-d array as a Python float (a device synchronisation on GPUs)."""
    return float(value)


def _library_of(obj: Any) -> str:
    return type(obj).__module__.split(".")[0]


def namespace_like(like: Any) -> tuple[ModuleType, Any, Any]:
    """Return ``(xp, device, dtype)`` of the array ``like``; NumPy, CPU, float64 if ``None``."""
    if like is None:
        xp = numpy_namespace()
        return xp, "cpu", xp.float64
    return array_namespace(like), device(like), like.dtype
