"""The accelerators of the series' partial sums, as the summation loop applies them.

:class:`SumAccelerator` estimates the limit from the latest partial sums (vector Wynn epsilon,
its closed form at order 1, entrywise Levin t and Aitken) or, for ``"tail"``, adds the exact
tail of the slow eigen-component that dominates the last term (:func:`tail_factor`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from .._core._array_api import add_scaled, device, host_values
from .._core._vector_space import VectorSpace
from ..acceleration._levin import levin_window
from ..acceleration._sequence import finish
from ..acceleration._wynn import epsilon_table
from ._coefficients import CoefficientStream, generating_function

__all__ = ["LatestTerms", "SumAccelerator", "host_norms", "real_part", "tail_factor"]


def host_norms(space: VectorSpace, x: Any) -> np.ndarray:
    """Return the column norms of ``x`` (one for a vector) on the host, in one transfer."""
    return host_values(space.norm(x))


def real_part(xp: ModuleType, values: Any) -> Any:
    """Return the real part of ``values`` (the values themselves for a real dtype)."""
    return xp.real(values) if xp.isdtype(values.dtype, "complex floating") else values


@dataclass(frozen=True)
class LatestTerms:
    """The last two terms of the series after term ``n``, as the accelerators read them.

    Parameters
    ----------
    n : int
        The index of the latest term.
    v, v_previous : array
        The terms ``v_n`` and ``v_{n-1}`` (vectors, or blocks of columns).
    norms, norms_previous : numpy.ndarray
        Their (column) norms on the host.
    """

    n: int
    v: Any
    v_previous: Any
    norms: np.ndarray
    norms_previous: np.ndarray


class SumAccelerator:
    """Applies the chosen accelerator to the latest partial sums (and terms, for ``"tail"``)."""

    def __init__(
        self, space: VectorSpace, kind: str, order: int, stream: CoefficientStream
    ) -> None:
        self.space = space
        self.xp = space.xp
        self.kind = kind
        self.order = order
        self.stream = stream
        self.width = 2 * order + 1
        self.minimum_terms = 2 if kind == "tail" else 2 * order + 1

    def __call__(self, sums: list[Any], latest: LatestTerms) -> Any:
        """Estimate the limit after term ``n = latest.n`` from the partial sums ``sums``.

        ``sums`` ends with ``S_n`` (and starts earlier).
        """
        xp = self.xp
        if self.kind == "tail":
            return self._tail(sums[-1], latest)
        if self.kind in ("wynn", "wynn-sablonniere") and self.order == 1:
            return self._wynn_first_order(sums, latest)
        window = sums[-self.width :]
        if self.kind == "levin":
            terms = [sums[j + 1] - sums[j] for j in range(len(sums) - 1)][-self.width :]
            # The t transform: the remainder estimate is the last term.
            estimate, bad = levin_window(xp, window, terms, latest.n - 2 * self.order, "t")
        elif self.kind == "aitken":
            first, middle, last = window
            step = last - middle
            curvature = step - (middle - first)
            bad = curvature == 0
            estimate = last - step * step / xp.where(bad, 1.0, curvature)
        else:
            modifier = "sablonniere" if self.kind == "wynn-sablonniere" else None
            estimate, bad = epsilon_table(
                xp, window, self.order, modifier=modifier, space=self.space
            )
        return finish(xp, estimate, window[-1], bad, False, self.space)

    def _wynn_first_order(self, sums: list[Any], latest: LatestTerms) -> Any:
        """Order-1 vector epsilon (Samelson inverse) in closed form from the last two terms.

        With the terms ``d1 = c_{n-1} v_{n-1}`` and ``d2 = c_n v_n`` (the differences of the
        window ``S_{n-2}, S_{n-1}, S_n``), ``e = S_{n-1} + w ((d2)^-1 - (d1)^-1)^-1`` and
        ``u^-1 = conj(u) / |u|^2`` simplify to
        ``e = S_{n-1} + w (|d1|^2 d2 - |d2|^2 d1) / |d1 - d2|^2`` (``w = 1``, or 2 for
        Sablonniere's modifier): one new vector ``d1 - d2`` and its norm, the rest from the
        known norms of the terms: about half the memory traffic of the general table
        (:func:`epsilon_table`), and no differences of partial sums, which cost the table about
        ``|S| / |d1 - d2|`` ulps. A zero ``d1``, ``d2`` or ``d1 - d2`` (no defined inverse), or
        a non-finite correction, returns ``S_n``, as the table does.
        """
        xp, space = self.xp, self.space
        n, v, v_previous = latest.n, latest.v, latest.v_previous
        norms, norms_previous = latest.norms, latest.norms_previous
        weight = 2.0 if self.kind == "wynn-sablonniere" else 1.0
        coefficient, coefficient_previous = self.stream[n], self.stream[n - 1]
        gap = add_scaled(v_previous * coefficient_previous, v, -coefficient)  # d1 - d2
        with np.errstate(over="ignore", under="ignore"):  # huge or tiny terms: S_n below
            gap_squared = host_norms(space, gap) ** 2
            first_squared = (coefficient_previous * norms_previous) ** 2  # |d1|^2
            second_squared = (coefficient * norms) ** 2  # |d2|^2
        if v.ndim == 1:  # host scalars as Python floats: NumPy calls cost more than the sums
            first, second, gap_value = (
                float(a[0]) for a in (first_squared, second_squared, gap_squared)
            )
            scale = weight / gap_value if 0 < gap_value < math.inf else math.inf
            if first == 0 or second == 0 or not math.isfinite(scale * max(first, second)):
                return xp.asarray(sums[-1], copy=True)
            estimate = add_scaled(sums[-2], v, scale * first * coefficient)
            estimate = add_scaled(estimate, v_previous, -scale * second * coefficient_previous)
            return estimate if space.all_finite(estimate) else xp.asarray(sums[-1], copy=True)
        bad = (first_squared == 0) | (second_squared == 0) | (gap_squared == 0)
        bad |= ~np.isfinite(gap_squared)
        with np.errstate(over="ignore", invalid="ignore"):
            scale = np.where(bad, 0.0, weight / np.where(bad, 1.0, gap_squared))
            along_v = scale * first_squared * coefficient  # the factor of v_n
            along_previous = -scale * second_squared * coefficient_previous  # of v_{n-1}
        bad |= ~(np.isfinite(along_v) & np.isfinite(along_previous))
        where = device(v)
        estimate = sums[-2] + v * xp.asarray(along_v, dtype=v.dtype, device=where)
        estimate += v_previous * xp.asarray(along_previous, dtype=v.dtype, device=where)
        flag = xp.asarray([bool(value) for value in bad], device=where)
        return finish(xp, estimate, sums[-1], flag, False, space)

    def _tail(self, partial_sum: Any, latest: LatestTerms) -> Any:
        """``S_n + T_n(x) v_n``: the exact tail of the series for one eigen-component.

        ``x`` is the Rayleigh quotient ``(v_n . v_{n-1}) / (v_{n-1} . v_{n-1})`` of ``Z``, the
        eigenvalue of the slowest component that dominates ``v_n``, and
        ``T_n(x) = sum_{j>n} c_j x^{j-n}`` is summed on the host from the known coefficients.
        """
        xp, n, v, v_previous = self.xp, latest.n, latest.v, latest.v_previous
        numerator = host_values(real_part(xp, self.space.inner(v, v_previous)))
        denominator = host_values(real_part(xp, self.space.inner(v_previous, v_previous)))
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.where(denominator > 0, numerator / denominator, 0.0)
        factors = [tail_factor(self.stream, n, float(value)) for value in np.clip(x, -1.0, 1.0)]
        if v.ndim == 1:
            return partial_sum + factors[0] * v
        row = xp.asarray(factors, dtype=v.dtype, device=device(v))
        return partial_sum + row * v


def tail_factor(stream: CoefficientStream, n: int, x: float) -> float:
    """``T_n(x) = sum_{j>=1} c_{n+j} x^j`` in float64 on the host (0 where it is infinite)."""
    if x == 0.0 or not math.isfinite(x):
        return 0.0
    limit = generating_function(stream.kind, x, stream.delta)
    if not math.isfinite(limit):
        return 0.0
    if n * math.log(abs(x)) > -300.0:
        # Closed form (f(x) - P_n(x)) / x^n with P_n the partial sum of the power series.
        head = np.polynomial.polynomial.polyval(x, stream.first(n + 1))
        return float((limit - head) / x**n)
    # x^n underflows: sum the rapidly decaying tail directly.
    count = min(math.ceil(-40.0 / math.log(abs(x))) + 1, 1_000_000)
    coefficients = stream.first(n + count + 1)[n + 1 :]
    return float(np.polynomial.polynomial.polyval(x, np.concatenate([[0.0], coefficients])))
