"""Levin's t, u and v transformations, applied entry by entry."""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

from ._sequence import as_elements, finish

__all__ = ["levin"]

_KINDS = ("t", "u", "v")


def levin(sequence: Any, kind: str = "t", *, beta: float = 1.0) -> Any:
    r"""Accelerate a converging sequence with a Levin-type transformation.

    The terms of the underlying series are the differences ``a_j = S_j - S_{j-1}``; the
    transform of the highest order the sequence allows is returned.

    Parameters
    ----------
    sequence : array or sequence of numbers or arrays
        The sequence ``S_0, S_1, ...``, oldest entry first: Python numbers, arrays of one shape
        (scalars, vectors, ``(n, k)`` blocks) or one array whose first axis indexes it.
        ``m`` entries give ``m - 1`` terms; at least 3 entries (4 for ``kind="v"``).
    kind : {"t", "u", "v"}, default "t"
        The remainder estimate ``omega_j``: ``a_j`` (t, best for alternating series),
        ``(beta + j) a_j`` (u, for logarithmic convergence), or
        ``a_j a_{j+1} / (a_j - a_{j+1})`` (v).
    beta : float, default 1.0
        The shift ``beta > 0`` of the Levin weights.

    Returns
    -------
    float or array
        The accelerated estimate, a ``float`` for Python numbers, else an array of the entries'
        shape, library and device. Where a remainder estimate or the denominator is exactly zero
        (or the result is not finite) the last entry of the sequence is returned there.

    Raises
    ------
    ValueError
        For an unknown ``kind``, ``beta <= 0`` or too short a sequence.

    Notes
    -----
    With ``n`` the index of the first partial sum used and ``k`` the order,

    .. math:: L_k^{(n)} = \frac{\sum_{j=0}^{k} (-1)^j \binom{k}{j}
              \left(\frac{\beta + n + j}{\beta + n + k}\right)^{k-1}
              S_{n+j} / \omega_{n+j}}
              {\sum_{j=0}^{k} (-1)^j \binom{k}{j}
              \left(\frac{\beta + n + j}{\beta + n + k}\right)^{k-1} / \omega_{n+j}}.

    It is exact when ``S - S_j = omega_j * (polynomial of degree k - 1 in 1/(beta + j))``.
    Vector sequences are transformed entry by entry (the standard vector use of Levin's
    transformations); order 1 of the t transform is Aitken's delta-squared process.

    References
    ----------
    .. [1] D. Levin, "Development of non-linear transformations for improving convergence of
       sequences", Int. J. Comput. Math. B3 (1973).
    .. [2] E. J. Weniger, "Nonlinear sequence transformations for the acceleration of
       convergence and the summation of divergent series", Comput. Phys. Rep. 10 (1989).

    Examples
    --------
    >>> import math
    >>> from hvpseries.acceleration import levin
    >>> sums = [sum((-1) ** (k + 1) / k for k in range(1, n + 1)) for n in range(1, 12)]
    >>> abs(levin(sums, "t") - math.log(2)) < 1e-10
    True
    """
    if kind not in _KINDS:
        message = f"kind must be 't', 'u' or 'v', got {kind!r}"
        raise ValueError(message)
    if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta > 0):
        message = f"beta must be a finite number > 0, got {beta!r}"
        raise ValueError(message)
    minimum = 4 if kind == "v" else 3
    xp, elements, scalar = as_elements(sequence, minimum, "levin")
    terms = [elements[j] - elements[j - 1] for j in range(1, len(elements))]
    result, bad = levin_window(xp, elements[1:], terms, 1, kind, beta=float(beta))
    return finish(xp, result, elements[-1], bad, scalar)


def levin_window(
    xp: ModuleType,
    sums: list[Any],
    terms: list[Any],
    first_index: int,
    kind: str,
    *,
    beta: float = 1.0,
) -> tuple[Any, Any]:
    """Levin transform of ``sums[j] = S_{n+j}`` with ``terms[j] = a_{n+j}``; no input checks.

    Uses every sum (t, u: order ``len - 1``) or all but the last (v: the last term only enters
    the remainder estimates). Returns ``(estimate, bad)`` with ``bad`` flagging entries where a
    remainder estimate or the denominator vanished.
    """
    if kind == "v":
        omegas = []
        for j in range(len(sums) - 1):
            gap = terms[j] - terms[j + 1]
            zero_gap = gap == 0
            omegas.append(
                xp.where(zero_gap, 0.0, terms[j] * terms[j + 1] / xp.where(zero_gap, 1.0, gap))
            )
        sums = sums[:-1]
    elif kind == "u":
        omegas = [(beta + first_index + j) * terms[j] for j in range(len(sums))]
    else:
        omegas = list(terms[: len(sums)])
    order = len(sums) - 1
    n = first_index
    numerator = 0.0
    denominator = 0.0
    bad = None
    for j in range(order + 1):
        # Host-side scalar weight (-1)^j C(k, j) ((beta + n + j) / (beta + n + k))^(k - 1).
        weight = (-1) ** j * math.comb(order, j)
        weight *= ((beta + n + j) / (beta + n + order)) ** (order - 1)
        zero = omegas[j] == 0
        bad = zero if bad is None else xp.logical_or(bad, zero)
        inverse = weight / xp.where(zero, 1.0, omegas[j])
        numerator = numerator + inverse * sums[j]
        denominator = denominator + inverse
    zero = denominator == 0
    bad = xp.logical_or(bad, zero)
    return numerator / xp.where(zero, 1.0, denominator), bad
