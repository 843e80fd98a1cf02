"""Vector updates in place, at one pass over memory where the library allows it.

A solver's inner loop is a few passes over ``n``-vectors per matvec; written as
``y = y - alpha * x`` each pass allocates a temporary and touches memory twice. These
helpers update the caller's own array instead: BLAS-1 on NumPy (``axpy``, one pass), the
fused in-place methods on PyTorch (``add_``, ``div_``), the standard's in-place operators
elsewhere (CuPy, ``array_api_strict``). Where autograd records ``x`` or ``y`` they return a
new array, never changing a tensor autograd may have saved, so a caller always rebinds::

    w = add_scaled_(w, q, -alpha)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._array_api import requires_grad

__all__ = ["add_scaled_", "add_scaled_columns_", "divide_into"]


def _blas_axpy(y: np.ndarray, x: Any) -> Any:
    """Return SciPy's BLAS ``axpy`` for ``y`` and ``x``, or ``None`` where it does not apply.

    It applies to one real BLAS dtype shared by both, C-contiguous arrays of one shape
    (a 2-D block is updated through its flat view) and a writeable ``y``: f2py copies any
    other ``y``, and the update would be lost.
    """
    if not (isinstance(x, np.ndarray) and x.dtype == y.dtype and x.shape == y.shape):
        return None
    if not (y.flags.c_contiguous and x.flags.c_contiguous and y.flags.writeable):
        return None
    if y.dtype == np.float64:
        from scipy.linalg.blas import daxpy

        return daxpy
    if y.dtype == np.float32:
        from scipy.linalg.blas import saxpy

        return saxpy
    return None


def add_scaled_(y: Any, x: Any, alpha: float) -> Any:
    """Add ``alpha * x`` to ``y`` in place and return ``y``.

    Parameters
    ----------
    y : array
        The array updated; the caller's own (not a view of another's data).
    x : array
        Of ``y``'s shape and library (it may be ``y`` itself).
    alpha : float
        The scale.

    Returns
    -------
    array
        ``y``, updated; a new array ``y + alpha * x`` where autograd records ``x`` or ``y``.
    """
    if requires_grad(y) or requires_grad(x):
        return y + alpha * x
    if isinstance(y, np.ndarray):
        axpy = _blas_axpy(y, x)
        if axpy is not None:
            axpy(x.reshape(-1), y.reshape(-1), a=alpha)  # reshape: views, so y is updated
            return y
    elif hasattr(y, "add_"):  # a torch tensor: one fused kernel
        return y.add_(x, alpha=alpha)
    y += alpha * x
    return y


def add_scaled_columns_(Y: Any, X: Any, alpha: Any) -> Any:
    """Add ``alpha[j] * X[:, j]`` to each column ``Y[:, j]`` in place and return ``Y``.

    Parameters
    ----------
    Y : array, shape (n, k) (or any shape ``alpha * X`` broadcasts to)
        The block updated; the caller's own.
    X : array, shape (n, k)
        Of ``Y``'s library and dtype.
    alpha : array, shape (k,)
        The scale of each column, on ``Y``'s device (no host transfer on a GPU).

    Returns
    -------
    array
        ``Y``, updated; a new array where autograd records an input.
    """
    if requires_grad(Y) or requires_grad(X) or requires_grad(alpha):
        return Y + alpha * X
    if isinstance(Y, np.ndarray):
        if Y.ndim == 2 and Y.shape[1] == 1 and _blas_axpy(Y, X) is not None:
            return add_scaled_(Y, X, float(alpha[0]))  # NumPy holds alpha on the host
    elif hasattr(Y, "addcmul_"):  # torch: one kernel, alpha broadcast over the rows
        return Y.addcmul_(X, alpha)
    Y += alpha * X
    return Y


def divide_into(out: Any, x: Any, divisor: float) -> Any:
    """Write ``x / divisor`` into ``out`` (which may be ``x``) and return it.

    Parameters
    ----------
    out : array
        The destination, of ``x``'s shape and library; the caller's own.
    x : array
        The dividend.
    divisor : float
        The divisor (true division, so the values match ``x / divisor`` exactly).

    Returns
    -------
    array
        ``out``, or a new array ``x / divisor`` where autograd records ``x`` or ``out``.
    """
    if requires_grad(x) or requires_grad(out):
        return x / divisor
    if isinstance(out, np.ndarray) and isinstance(x, np.ndarray):
        return np.divide(x, divisor, out=out)
    if hasattr(out, "div_"):  # torch: one kernel into the destination
        import torch

        return torch.div(x, divisor, out=out)
    if out is x:
        out /= divisor
        return out
    out[...] = x / divisor
    return out
