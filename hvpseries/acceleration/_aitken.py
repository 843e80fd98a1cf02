"""Aitken's delta-squared process, entry by entry."""

from __future__ import annotations

from typing import Any

from ._sequence import as_elements, finish

__all__ = ["aitken"]


def aitken(sequence: Any) -> Any:
    """Accelerate a converging sequence with Aitken's delta-squared process.

    Uses the last three entries ``S_0, S_1, S_2`` and returns, entry by entry,
    ``S_2 - (S_2 - S_1)^2 / ((S_2 - S_1) - (S_1 - S_0))``.

    Parameters
    ----------
    sequence : array or sequence of numbers or arrays
        At least three entries, oldest first: Python numbers, arrays of one shape, or one array
        whose first axis indexes the sequence.

    Returns
    -------
    float or array
        The estimate; where the second difference is zero (or the result is not finite) the
        last entry is returned for that entry.

    Notes
    -----
    Exact for ``S_m = S + a x^m``. For vectors it acts on each entry separately; the vector
    (Samelson) version is :func:`wynn_epsilon` with ``order=1``, which the series solvers use.

    Examples
    --------
    >>> from hvpseries.acceleration import aitken
    >>> aitken([1.0, 1.5, 1.75])  # partial sums of 1 + 1/2 + 1/4 + ... -> 2
    2.0
    """
    xp, elements, scalar = as_elements(sequence, 3, "aitken")
    first, middle, last = elements[-3:]
    step = last - middle
    curvature = step - (middle - first)
    zero = curvature == 0
    result = last - step * step / xp.where(zero, 1.0, curvature)
    return finish(xp, result, last, zero, scalar)
