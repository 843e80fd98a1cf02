"""Any callable ``x -> A x`` as a :class:`LinearOperator`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._core._array_api import dtype_name, namespace_like
from ._base import LinearOperator

__all__ = ["FunctionOperator"]


class FunctionOperator(LinearOperator):
    """A linear operator defined by a function that applies it.

    Parameters
    ----------
    matvec : callable
        ``matvec(x)`` returns ``A @ x`` for ``x`` of shape ``(n,)``, as an array of shape
        ``(m,)`` of the same library and device.
    shape : tuple of int
        ``(m, n)``.
    dtype : dtype, optional
        The floating dtype the operator computes in; defaults to the dtype of ``like``, or
        float64.
    like : array, optional
        An array whose library and device the operator works with (NumPy on the CPU if omitted).
    matmat : callable, optional
        ``matmat(X)`` for a block ``X`` of shape ``(n, k)``, used for several vectors at once
        (batched Hessian-vector products, multiple right-hand sides). Without it, a block is
        applied one column at a time.
    rmatvec, rmatmat : callable, optional
        The adjoint ``A^H`` applied to a vector or a block. Not needed for a symmetric operator.
    symmetric, psd : bool or None
        Structure tags (see :class:`LinearOperator`). They are trusted, not checked.

    Raises
    ------
    TypeError
        If ``matvec`` (or another given function) is not callable.

    Examples
    --------
    >>> import numpy as np
    >>> import hvpseries as hs
    >>> weights = np.array([1.0, 2.0, 3.0])
    >>> A = hs.FunctionOperator(lambda x: weights * x, (3, 3), symmetric=True)
    >>> A @ np.ones(3)
    array([1., 2., 3.])
    >>> (A @ np.ones((3, 2))).shape
    (3, 2)
    """

    def __init__(
        self,
        matvec: Callable[[Any], Any],
        shape: tuple[int, int],
        *,
        dtype: Any = None,
        like: Any = None,
        matmat: Callable[[Any], Any] | None = None,
        rmatvec: Callable[[Any], Any] | None = None,
        rmatmat: Callable[[Any], Any] | None = None,
        symmetric: bool | None = None,
        psd: bool | None = None,
    ) -> None:
        functions = {"matvec": matvec, "matmat": matmat, "rmatvec": rmatvec, "rmatmat": rmatmat}
        for name, function in functions.items():
            if function is not None and not callable(function):
                message = f"{name} must be callable, got {type(function).__name__}"
                raise TypeError(message)
        if matvec is None:
            message = "matvec must be callable, got None"
            raise TypeError(message)
        xp, where, default_dtype = namespace_like(like)
        super().__init__(
            shape,
            default_dtype if dtype is None else dtype,
            xp=xp,
            device=where,
            symmetric=symmetric,
            psd=psd,
        )
        self._functions = functions

    def _apply(self, name: str, x: Any, rows: int) -> Any:
        result = self._functions[name](x)
        expected = (rows,) if x.ndim == 1 else (rows, x.shape[1])
        if tuple(getattr(result, "shape", ())) != expected:
            got = getattr(result, "shape", type(result).__name__)
            message = f"the {name} function returned {got}, expected an array of shape {expected}"
            raise ValueError(message)
        if result.dtype != x.dtype:
            message = (
                f"the {name} function returned {dtype_name(result.dtype)} for "
                f"{dtype_name(x.dtype)} input; it must return the dtype of its input (the "
                "operator's dtype), or precision is lost silently"
            )
            raise TypeError(message)
        return result

    def _matvec(self, x: Any) -> Any:
        return self._apply("matvec", x, self._shape[0])

    def _matmat(self, X: Any) -> Any:
        if self._functions["matmat"] is not None:
            return self._apply("matmat", X, self._shape[0])
        return super()._matmat(X)

    def _rmatvec(self, x: Any) -> Any:
        if self._functions["rmatvec"] is not None:
            return self._apply("rmatvec", x, self._shape[1])
        if self._functions["rmatmat"] is not None:
            return self._apply("rmatmat", x[:, None], self._shape[1])[:, 0]
        return super()._rmatvec(x)

    def _rmatmat(self, X: Any) -> Any:
        if self._functions["rmatmat"] is not None:
            return self._apply("rmatmat", X, self._shape[1])
        if self._functions["rmatvec"] is not None:
            return self._by_columns(self._rmatvec, X, self._shape[1])
        return super()._rmatmat(X)
