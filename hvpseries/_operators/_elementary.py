"""Operators with closed-form action: the identity and diagonal matrices."""

from __future__ import annotations

from typing import Any

from .._core._array_api import array_namespace, check_floating_dtype, device, namespace_like
from ._base import LinearOperator

__all__ = ["DiagonalOperator", "IdentityOperator"]


class IdentityOperator(LinearOperator):
    """The ``n x n`` identity.

    Parameters
    ----------
    n : int
        Dimension.
    dtype : dtype, optional
        Floating dtype; defaults to the dtype of ``like``, or float64.
    like : array, optional
        An array whose library and device the operator adopts (NumPy on the CPU if omitted).

    Notes
    -----
    Applying it returns its input unchanged (the same array object, not a copy).

    Examples
    --------
    >>> import numpy as np
    >>> import hvpseries as hs
    >>> I = hs.IdentityOperator(3)
    >>> I.symmetric, I.psd
    (True, True)
    >>> (I * 2.0) @ np.arange(3.0)
    array([0., 2., 4.])
    """

    def __init__(self, n: int, *, dtype: Any = None, like: Any = None) -> None:
        xp, where, default_dtype = namespace_like(like)
        super().__init__(
            (n, n),
            default_dtype if dtype is None else dtype,
            xp=xp,
            device=where,
            symmetric=True,
            psd=True,
        )

    def todense(self) -> Any:
        """Return the identity matrix."""
        return self._xp.eye(self._shape[0], dtype=self._dtype, device=self._device)

    def _matvec(self, x: Any) -> Any:
        return x

    def _matmat(self, X: Any) -> Any:
        return X


class DiagonalOperator(LinearOperator):
    """The diagonal matrix ``diag(d)``.

    Parameters
    ----------
    diagonal : array
        1-D floating array of any array-API library; the operator adopts its library and device.
    check_finite : bool, default True
        Check once that every entry is finite.

    Notes
    -----
    The structure tags are read off the entries at construction (one host synchronisation):
    ``symmetric`` when every entry is real, ``psd`` when every entry is real and non-negative.

    Examples
    --------
    >>> import numpy as np
    >>> import hvpseries as hs
    >>> D = hs.DiagonalOperator(np.array([3.0, -1.0]))
    >>> D.symmetric, D.psd
    (True, False)
    >>> D @ np.ones(2)
    array([ 3., -1.])
    """

    def __init__(self, diagonal: Any, *, check_finite: bool = True) -> None:
        xp = array_namespace(diagonal)
        if diagonal.ndim != 1:
            message = f"DiagonalOperator needs a 1-D array, got shape {tuple(diagonal.shape)}"
            raise ValueError(message)
        check_floating_dtype(xp, diagonal.dtype, "the diagonal")
        if check_finite and not bool(xp.all(xp.isfinite(diagonal))):
            message = "the diagonal has NaN or infinite entries; pass check_finite=False to skip"
            raise ValueError(message)
        real = xp.real(diagonal) if xp.isdtype(diagonal.dtype, "complex floating") else diagonal
        symmetric = bool(xp.all(real == diagonal))
        n = diagonal.shape[0]
        super().__init__(
            (n, n),
            diagonal.dtype,
            xp=xp,
            device=device(diagonal),
            symmetric=symmetric,
            psd=symmetric and bool(xp.all(real >= 0)),
        )
        self._diagonal = diagonal

    @property
    def diagonal(self) -> Any:
        """The diagonal entries (not a copy)."""
        return self._diagonal

    def todense(self) -> Any:
        """Return ``diag(d)`` as a dense array."""
        xp = self._xp
        n = self._shape[0]
        return xp.eye(n, dtype=self._dtype, device=self._device) * self._diagonal[None, :]

    def _matvec(self, x: Any) -> Any:
        return self._diagonal * x

    def _matmat(self, X: Any) -> Any:
        return self._diagonal[:, None] * X

    def _rmatvec(self, x: Any) -> Any:
        return self._xp.conj(self._diagonal) * x

    def _rmatmat(self, X: Any) -> Any:
        return self._xp.conj(self._diagonal)[:, None] * X
