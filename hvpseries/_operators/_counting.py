"""A wrapper that counts operator applications, the unit of work of every solver."""

from __future__ import annotations

from typing import Any

from ._algebra import CompositeOperator
from ._base import LinearOperator

__all__ = ["CountingOperator"]


class CountingOperator(CompositeOperator):
    """Wrap an operator and count how many vectors it is applied to.

    A block of ``k`` columns counts as ``k`` matvecs (it is ``k`` Hessian-vector products,
    however it is batched); ``n_calls`` counts the calls themselves.

    Parameters
    ----------
    operator : LinearOperator
        The operator to wrap; its tags, library, device and vector space are kept.

    Examples
    --------
    >>> import numpy as np
    >>> import hvpseries as hs
    >>> A = hs.CountingOperator(hs.DiagonalOperator(np.array([1.0, 2.0])))
    >>> _ = A @ np.ones(2)
    >>> _ = A @ np.ones((2, 3))
    >>> A.n_matvec, A.n_calls
    (4, 2)
    """

    def __init__(self, operator: LinearOperator) -> None:
        if not isinstance(operator, LinearOperator):
            message = (
                f"CountingOperator wraps a LinearOperator, got {type(operator).__name__}; "
                "convert it with hvpseries.aslinearoperator first"
            )
            raise TypeError(message)
        tags = {"symmetric": operator.symmetric, "psd": operator.psd}
        super().__init__(operator, operator.shape, operator.dtype, **tags)
        self.operator = operator
        self.n_matvec = 0
        self.n_rmatvec = 0
        self.n_calls = 0

    def reset(self) -> None:
        """Set every counter back to zero."""
        self.n_matvec = self.n_rmatvec = self.n_calls = 0

    def _apply(self, method: str, x: Any) -> Any:
        vectors = x.shape[1] if method.endswith("mat") else 1
        if method in ("_rmatvec", "_rmatmat"):
            self.n_rmatvec += vectors
        else:
            self.n_matvec += vectors
        self.n_calls += 1
        return getattr(self.operator, method)(x)
