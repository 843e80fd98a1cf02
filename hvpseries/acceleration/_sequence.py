"""Turn the ``sequence`` argument of the accelerators into a list of arrays of one namespace."""

from __future__ import annotations

import numbers
from types import ModuleType
from typing import Any

from .._core._array_api import array_namespace, check_floating_dtype, is_array, numpy_namespace
from .._core._vector_space import VectorSpace

__all__ = ["as_elements", "finish", "is_complex", "norms_squared"]


def as_elements(sequence: Any, minimum: int, what: str) -> tuple[ModuleType, list[Any], bool]:
    """Return ``(xp, elements, scalar)`` for a sequence of numbers, arrays or a stacked array.

    ``sequence`` is either an array whose first axis indexes the sequence, or an iterable of
    Python numbers or of arrays of one shape. ``scalar`` says the input was Python numbers, so
    that the result can be returned as a ``float``.

    Raises
    ------
    TypeError
        For mixed libraries or non-floating arrays.
    ValueError
        For fewer than ``minimum`` entries, entries of different shapes, or more than 2 dims.
    """
    scalar = False
    if is_array(sequence):
        xp = array_namespace(sequence)
        if sequence.ndim == 0:
            message = f"{what} needs a sequence, got a 0-d array"
            raise ValueError(message)
        elements = [sequence[i, ...] for i in range(sequence.shape[0])]
    else:
        try:
            elements = list(sequence)
        except TypeError:
            message = f"{what} needs a sequence of numbers or arrays, got {type(sequence).__name__}"
            raise TypeError(message) from None
        if elements and all(
            isinstance(e, numbers.Real) and not isinstance(e, bool) for e in elements
        ):
            xp = numpy_namespace()
            elements = [xp.asarray(float(e), dtype=xp.float64) for e in elements]
            scalar = True
        elif elements and all(is_array(e) for e in elements):
            xp = array_namespace(*elements)
        else:
            message = (
                f"{what} needs a sequence of real numbers or of arrays (not a mix), got "
                f"{sorted({type(e).__name__ for e in elements}) or 'an empty sequence'}"
            )
            raise TypeError(message)
    if len(elements) < minimum:
        message = f"{what} needs at least {minimum} entries, got {len(elements)}"
        raise ValueError(message)
    shape = tuple(elements[0].shape)
    if any(tuple(e.shape) != shape for e in elements):
        message = f"every entry of the sequence must have one shape; {what} got several"
        raise ValueError(message)
    if len(shape) > 2:
        message = (
            f"{what} accelerates scalars, vectors (n,) or blocks (n, k) of column vectors; "
            f"got entries of shape {shape}"
        )
        raise ValueError(message)
    check_floating_dtype(xp, elements[0].dtype, "the sequence")
    return xp, elements, scalar


def is_complex(xp: ModuleType, x: Any) -> bool:
    """Whether ``x`` has a complex dtype."""
    return bool(xp.isdtype(x.dtype, "complex floating"))


def norms_squared(xp: ModuleType, x: Any, space: VectorSpace | None = None) -> Any:
    """Squared 2-norms: of a vector (0-d result), of each column of a block, or ``|x|^2``.

    The norms of vectors and blocks are those of ``space`` (an operator's
    :class:`~hvpseries.VectorSpace`; the local Euclidean one if None), in one reduction.
    """
    if x.ndim == 0:
        return xp.real(xp.conj(x) * x) if is_complex(xp, x) else x * x
    squares = (space if space is not None else VectorSpace(xp)).inner(x, x)
    return xp.real(squares) if is_complex(xp, x) else squares


def finish(
    xp: ModuleType,
    result: Any,
    fallback: Any,
    bad: Any,
    scalar: bool,
    space: VectorSpace | None = None,
) -> Any:
    """Replace the entries or columns flagged ``bad`` (or non-finite) by ``fallback``.

    ``bad`` has the shape of the squared norms (vector inverse) or of an entry (componentwise).
    Whether a whole vector or column is finite is decided in ``space`` (an operator's
    :class:`~hvpseries.VectorSpace`), so that every process holding part of it decides alike.
    The fallback is returned as a new array, never as the caller's own last entry.
    """
    if bad.ndim == 0 and result.ndim > 0:  # one vector: keep it or fall back, whole
        local = space if space is not None else VectorSpace(xp)
        keep = local.all_finite(result) and not bool(bad)
        chosen = result if keep else fallback
    else:
        if bad.ndim < result.ndim:
            # columns of a block: a column norm is finite exactly when its entries are (or
            # conservatively not, if finite entries overflow the norm)
            finite = (
                xp.isfinite(space.norm(result))
                if space is not None
                else xp.all(xp.isfinite(result), axis=0)
            )
        else:
            finite = xp.isfinite(result)
        chosen = select(xp, xp.logical_or(bad, xp.logical_not(finite)), fallback, result)
    if scalar:
        return float(chosen)
    if chosen is fallback:
        # writing to the result must not change the input sequence
        chosen = xp.asarray(chosen, copy=True)
    return chosen


def select(xp: ModuleType, mask: Any, where_true: Any, where_false: Any) -> Any:
    """``xp.where(mask, where_true, where_false)``, without a pass over the arrays for 0-d masks.

    A 0-d mask (one vector's flag) picks one array whole; ``xp.where`` would broadcast it over
    every entry (about 4 ns an entry for torch on a CPU, several vector passes' worth).
    """
    if mask.ndim == 0:
        return where_true if bool(mask) else where_false
    return xp.where(mask, where_true, where_false)
