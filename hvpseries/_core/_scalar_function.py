"""The user's scalar function f(t) of f(A) b, checked where the solvers evaluate it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["checked_scalar_function"]


class _CheckedScalarFunction:
    """``f`` that returns a float64 array of the shape of its input, or says what is wrong.

    Other attributes (``kinks``, ``tridiagonal_apply``) are those of ``f``; ``__wrapped__`` is
    ``f`` itself (so ``np.abs`` and ``np.sign`` stay recognisable).
    """

    def __init__(self, f: Callable[[np.ndarray], Any]) -> None:
        self.__wrapped__ = f

    def __call__(self, t: np.ndarray) -> np.ndarray:
        f = self.__wrapped__
        raw = f(t)
        try:
            values = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError) as error:
            message = (
                f"f must return real numbers for a float64 array of eigenvalues; {f!r} "
                f"returned {type(raw).__name__} ({error})"
            )
            raise TypeError(message) from None
        if values.shape != np.shape(t):
            message = (
                f"f must be vectorised: applied to an array of shape {np.shape(t)} it must return "
                f"one value per entry, but {f!r} returned shape {values.shape}; write it with "
                "NumPy operations (e.g. lambda t: np.exp(-t)) or wrap a scalar function with "
                "np.vectorize"
            )
            raise ValueError(message)
        return values

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__wrapped__, name)

    def __repr__(self) -> str:
        return repr(self.__wrapped__)


def checked_scalar_function(f: Any) -> Callable[[np.ndarray], np.ndarray]:
    """Return ``f`` wrapped so that a wrong return value is a clear error at its first use.

    Raises
    ------
    TypeError
        If ``f`` is not callable.
    """
    if not callable(f):
        message = f"f must be a callable applied to a NumPy array of eigenvalues, got {f!r}"
        raise TypeError(message)
    if isinstance(f, _CheckedScalarFunction):
        return f
    return _CheckedScalarFunction(f)
