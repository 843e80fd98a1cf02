"""``aslinearoperator``: one entry point from any matrix-like object to a LinearOperator."""

from __future__ import annotations

from typing import Any

from .._core._array_api import is_array
from ._base import LinearOperator
from ._explicit import MatrixOperator, is_sparse_matrix
from ._function import FunctionOperator

__all__ = ["aslinearoperator"]


def aslinearoperator(
    obj: Any,
    *,
    symmetric: bool | None = None,
    psd: bool | None = None,
    like: Any = None,
) -> LinearOperator:
    """Return ``obj`` as a :class:`LinearOperator`.

    Parameters
    ----------
    obj : object
        One of: a :class:`LinearOperator` (returned as is, or retagged); a dense 2-D array of
        NumPy, PyTorch, CuPy or another array-API library; a sparse matrix of
        :mod:`scipy.sparse`, ``cupyx.scipy.sparse`` or PyTorch (COO, CSR); a
        :class:`scipy.sparse.linalg.LinearOperator`; or a duck type with ``shape``, ``dtype``
        and ``matvec`` (and optionally ``matmat``, ``rmatvec``, ``rmatmat``).
    symmetric, psd : bool or None
        Structure tags to attach; ``None`` keeps what is known (for a LinearOperator) or
        leaves the structure unknown. They are trusted, not checked.
    like : array, optional
        For duck types and SciPy operators: an array whose library and device the wrapped
        functions work with (NumPy if omitted).

    Returns
    -------
    LinearOperator

    Raises
    ------
    TypeError
        If ``obj`` is none of the above.

    Examples
    --------
    >>> import numpy as np
    >>> import hvpseries as hs
    >>> A = hs.aslinearoperator(np.array([[0.0, 1.0], [1.0, 0.0]]), symmetric=True)
    >>> A @ np.array([1.0, 2.0])
    array([2., 1.])
    >>> hs.aslinearoperator([[1.0]])
    Traceback (most recent call last):
    ...
    TypeError: cannot make a LinearOperator from a list; ...
    """
    if isinstance(obj, LinearOperator):
        if symmetric is None and psd is None:
            return obj
        return obj.with_structure(
            symmetric=obj.symmetric if symmetric is None else symmetric,
            psd=obj.psd if psd is None else psd,
        )
    if is_array(obj) or is_sparse_matrix(obj):
        return MatrixOperator(obj, symmetric=symmetric, psd=psd)
    if all(hasattr(obj, name) for name in ("shape", "dtype", "matvec")):
        adjoint = _has_adjoint(obj)
        return FunctionOperator(
            obj.matvec,
            tuple(obj.shape),
            dtype=obj.dtype,
            like=like,
            matmat=getattr(obj, "matmat", None),
            rmatvec=getattr(obj, "rmatvec", None) if adjoint else None,
            rmatmat=getattr(obj, "rmatmat", None) if adjoint else None,
            symmetric=symmetric,
            psd=psd,
        )
    message = (
        f"cannot make a LinearOperator from a {type(obj).__name__}; pass a 2-D array, a sparse "
        "matrix, a scipy.sparse.linalg.LinearOperator, an object with shape, dtype and "
        "matvec, or wrap a function with hvpseries.FunctionOperator"
    )
    raise TypeError(message)


def _has_adjoint(obj: Any) -> bool:
    """Whether a duck-typed operator really applies its adjoint.

    Every :class:`scipy.sparse.linalg.LinearOperator` has ``rmatvec``, but it raises unless the
    operator was given one (``rmatvec=``) or its class implements ``_rmatvec``/``_adjoint``.
    """
    import scipy.sparse.linalg as sla

    if not isinstance(obj, sla.LinearOperator):
        return hasattr(obj, "rmatvec") or hasattr(obj, "rmatmat")
    custom = hasattr(obj, "_CustomLinearOperator__rmatvec_impl")  # built from functions
    if custom:
        implementations = ("rmatvec", "rmatmat")
        return any(getattr(obj, f"_CustomLinearOperator__{n}_impl") for n in implementations)
    cls, base = type(obj), sla.LinearOperator
    return any(
        getattr(cls, n) is not getattr(base, n) for n in ("_rmatvec", "_rmatmat", "_adjoint")
    )
