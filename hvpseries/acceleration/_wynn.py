"""Wynn's epsilon algorithm (iterated Shanks transformation) for scalar and vector sequences."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from .._core._checks import check_positive_int
from .._core._vector_space import VectorSpace
from ._sequence import as_elements, finish, is_complex, norms_squared, select

__all__ = ["wynn_epsilon"]

_INVERSES = ("samelson", "componentwise")
_MODIFIERS = (None, "sablonniere")


def wynn_epsilon(
    sequence: Any,
    order: int = 1,
    *,
    inverse: str = "samelson",
    modifier: str | None = None,
) -> Any:
    r"""Accelerate a converging sequence with Wynn's epsilon algorithm.

    Runs the epsilon table on the last ``2 * order + 1`` entries ``S_{m0}, ..., S_{m0 + 2K}`` of
    the sequence and returns ``e_{2K}^{(m0)}``, the order-``K`` Shanks transform.

    Parameters
    ----------
    sequence : array or sequence of numbers or arrays
        The sequence, oldest entry first: Python numbers, arrays of one shape (scalars ``()``,
        vectors ``(n,)`` or blocks ``(n, k)`` whose columns are separate vector sequences), or
        one array whose first axis indexes the sequence. Any array library.
    order : int, default 1
        ``K``; order 1 is Aitken's delta-squared process for scalars.
    inverse : {"samelson", "componentwise"}, default "samelson"
        How to invert a vector: the Samelson inverse ``v / (v^H v)`` (Wynn's vector epsilon
        algorithm, which keeps the geometry of the vector) or entry by entry (the scalar
        algorithm applied to each entry). Both coincide for scalars.
    modifier : {None, "sablonniere"}, default None
        ``"sablonniere"`` multiplies the inverse that builds column ``s`` of the table by
        ``floor(s / 2) + 1`` (Sablonniere's modification for logarithmically converging
        sequences, such as the series on a spectrum reaching zero).

    Returns
    -------
    float or array
        The accelerated limit estimate: a ``float`` for a sequence of Python numbers, else an
        array of the entries' shape, library and device. Where a difference in the table is
        exactly zero (the sequence is constant there) or the result is not finite, the last
        entry of the sequence is returned for that entry (or column).

    Raises
    ------
    ValueError
        If ``order < 1``, the sequence has fewer than ``2 * order + 1`` entries, or ``inverse``/
        ``modifier`` is unknown.

    Notes
    -----
    With ``e_{-1}^{(m)} = 0`` and ``e_0^{(m)} = S_m``,

    .. math:: e_s^{(m)} = e_{s-2}^{(m+1)} + w_s \,(e_{s-1}^{(m+1)} - e_{s-1}^{(m)})^{-1},

    ``w_s = 1`` (Wynn) or ``w_s = floor(s/2) + 1`` (Sablonniere). Only the even columns are
    estimates of the limit. If the sequence is ``S_m = S + sum_{j<=K} a_j x_j^m`` (``K``
    geometric error components), ``e_{2K}`` is exact; for the series of hvpseries the error
    is a sum over the whole spectrum and the gain is a constant factor per order. Cost:
    ``O(K^2)`` vector operations and inner products.

    References
    ----------
    .. [1] P. Wynn, "On a device for computing the e_m(S_n) transformation", Math. Tables
       Aids Comput. 10 (1956).
    .. [2] P. R. Graves-Morris, D. E. Roberts, A. Salam, "The epsilon algorithm and related
       topics", J. Comput. Appl. Math. 122 (2000).

    Examples
    --------
    The partial sums of ``1 - 1/2 + 1/3 - ...`` converge slowly to ``log 2``:

    >>> import math
    >>> from hvpseries.acceleration import wynn_epsilon
    >>> sums = [sum((-1) ** (k + 1) / k for k in range(1, n + 1)) for n in range(1, 10)]
    >>> abs(sums[-1] - math.log(2)) > 0.05
    True
    >>> abs(wynn_epsilon(sums, order=4) - math.log(2)) < 1e-6
    True

    A geometric vector sequence with one error component is summed exactly at order 1:

    >>> import numpy as np
    >>> limit = np.array([1.0, 2.0])
    >>> seq = [limit + 0.5**m * np.array([3.0, -1.0]) for m in range(3)]
    >>> wynn_epsilon(seq, 1)
    array([1., 2.])
    """
    check_order(order)
    if inverse not in _INVERSES:
        message = f"inverse must be 'samelson' or 'componentwise', got {inverse!r}"
        raise ValueError(message)
    if modifier not in _MODIFIERS:
        message = f"modifier must be None or 'sablonniere', got {modifier!r}"
        raise ValueError(message)
    xp, elements, scalar = as_elements(sequence, 2 * order + 1, "wynn_epsilon")
    window = elements[-(2 * order + 1) :]
    result, bad = epsilon_table(xp, window, order, inverse=inverse, modifier=modifier)
    return finish(xp, result, window[-1], bad, scalar)


def check_order(order: Any) -> None:
    """Raise unless ``order`` is an integer >= 1."""
    check_positive_int(order, "order")


def epsilon_table(
    xp: ModuleType,
    window: list[Any],
    order: int,
    *,
    inverse: str = "samelson",
    modifier: str | None = None,
    space: VectorSpace | None = None,
) -> tuple[Any, Any]:
    """Run the epsilon table on exactly ``2 * order + 1`` entries; no input checks.

    The Samelson inverse of vectors uses the squared norms of ``space`` (an operator's
    :class:`~hvpseries.VectorSpace`; the local Euclidean norm if None).

    Returns ``(estimate, bad)``. Where a zero difference made a column undefined (typically
    because a lower order already reached the limit exactly), the estimate is the latest
    even-column value computed before that column; ``bad`` is then all False, and the caller's
    fallback only replaces non-finite values.
    """
    vector = inverse == "samelson" and window[0].ndim > 0
    complex_values = is_complex(xp, window[0])
    previous: list[Any] = [0.0] * (len(window) + 1)  # column e_{-1}
    current = list(window)  # column e_0
    fallback, bad = window[-1], None
    for s in range(1, 2 * order + 1):
        weight = float(s // 2 + 1) if modifier == "sablonniere" else 1.0
        new = []
        for m in range(len(current) - 1):
            difference = current[m + 1] - current[m]
            denominator = norms_squared(xp, difference, space) if vector else difference
            zero = denominator == 0
            bad = zero if bad is None else xp.logical_or(bad, zero)
            safe = xp.where(zero, xp.ones_like(denominator), denominator)
            if vector:
                numerator = xp.conj(difference) if complex_values else difference
                inverted = numerator / safe
            else:
                inverted = 1.0 / safe
            new.append(previous[m + 1] + weight * inverted)
        previous, current = current, new
        if s % 2 == 0:  # an even column holds estimates of the limit: keep the latest good one
            fallback = select(xp, bad, fallback, current[-1])
    return select(xp, bad, fallback, current[0]), xp.zeros_like(bad)
