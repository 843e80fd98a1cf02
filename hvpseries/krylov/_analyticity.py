r"""Where a scalar function is not analytic, located numerically from its values.

The certificate of :func:`hvpseries.krylov.funm_lanczos` bounds the error from spectrum the
Krylov space has not resolved beyond the *kinks* of ``f``: points where ``f`` is finite but is
not the analytic continuation of itself from one side to the other (``|t|`` and ``sign(t)`` at
0, ``1/(|t| + d)`` at 0, ``max(t - c, 0)`` at ``c``). A function may declare them (an attribute
``kinks``); for one that does not, :func:`analyticity` finds them.

*Smoothness test.* On an interval, ``f`` at the 33 Chebyshev points of the first kind gives its
degree-32 Chebyshev interpolant; ``f`` is *smooth* there when the last 8 coefficients are below
``1e-11`` of the largest. An analytic function is smooth on every small enough interval (its
coefficients decay geometrically, the faster the shorter the interval); across a kink the
coefficients decay only algebraically, on every scale.

*Search.* Bisection, breadth first: an interval that is not smooth is split (at an irrational
fraction, so that a kink at a round number is not a split point); if both halves are smooth,
an interval straddling the split point is tested too (a kink exactly at a split point is
invisible to both halves). Intervals narrower than ``2^-40`` of the whole that are still not
smooth locate a singular point, as does a rough interval narrower than ``1e-6`` of the whole
whose parts are all smooth (a kink of higher order, ``max(t - c, 0)^3``, whose signature the
rounding of ``t`` hides at the next scale); singular points closer than ``1e-6`` of the whole
are one. Intervals where ``f`` is finite at no node lie outside its
domain.

Each run of touching singular intervals is one singular point ``c``, taken as the number of
shortest decimal form in the run (0 when the run contains 0).

*Classification* of each singular point ``c``: where ``f`` is not finite on one whole side, ``c``
bounds ``f``'s domain (``f`` is finite on the spectrum by contract, so the spectrum lies on the
other side: ``sqrt``, ``log``); where ``1/f`` is smooth around ``c``, ``c`` is a pole (``1/t``),
across which a polynomial follows ``f`` as well as on either side; otherwise ``c`` is a kink.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["Analyticity", "analyticity"]

_DEGREE = 32
_TAIL = 8
_SMOOTH = 1e-11
_RELATIVE_FLOOR = 2.0**-40
# Rounding noise of the node values, in units of their magnitude (32 eps); an interval is
# narrow enough to locate a point when its width is below _POSITION_NOISE of its magnitude
# (below that, rounding of t hides any kink).
_NOISE = 32.0 * np.finfo(np.float64).eps
_POSITION_NOISE = 1e6 * np.finfo(np.float64).eps
_SUBNORMAL = 1e-300
# A rough interval narrower than this fraction of the search interval whose parts are smooth
# locates a point: analytic functions are smooth at such widths unless a singularity is there.
_RESOLVED_WIDTH = 1e-6
# Split point of an interval, as a fraction of its width (irrational: sqrt(2) - 1).
_SPLIT = math.sqrt(2.0) - 1.0
# The most intervals tested before ``f`` counts as too rough to analyse.
_MAX_INTERVALS = 16384
# Half-widths of the windows for the pole test and of the one-sided samples, relative to the
# search interval.
_POLE_WINDOWS = (1e-3, 1e-6, 1e-9)
_SIDE_SAMPLES = np.geomspace(1e-8, 1e-3, 11)

_NODES = np.cos(np.pi * (np.arange(_DEGREE + 1) + 0.5) / (_DEGREE + 1))
# Values at the nodes to Chebyshev coefficients (discrete orthogonality of T_k at the nodes).
_TO_COEFFICIENTS = (2.0 / (_DEGREE + 1)) * np.cos(
    np.outer(np.arange(_DEGREE + 1), np.arccos(_NODES))
)
_TO_COEFFICIENTS[0] *= 0.5


@dataclass(frozen=True)
class Analyticity:
    """What is known of ``f`` on an interval: its kinks and the edges of its domain.

    Attributes
    ----------
    kinks : tuple of float
        Points where ``f`` is not analytic and is not a pole.
    domain_starts : tuple of float
        Points where ``f`` becomes finite going up: it is not finite just below them.
    domain_ends : tuple of float
        Points where ``f`` stops being finite going up.
    """

    kinks: tuple[float, ...]
    domain_starts: tuple[float, ...]
    domain_ends: tuple[float, ...]


def analyticity(
    f: Callable[[np.ndarray], np.ndarray], lower: float, upper: float
) -> Analyticity | None:
    """Locate the kinks and domain edges of ``f`` on ``[lower, upper]``.

    Parameters
    ----------
    f : callable
        Elementwise on a float64 NumPy array, returning one of the same shape.
    lower, upper : float
        The interval searched, ``lower < upper``.

    Returns
    -------
    Analyticity or None
        ``None`` when ``f`` is too rough to analyse (more than 16384 intervals are not smooth,
        as for an ``f`` with noise or very many jumps).
    """
    floor = _RELATIVE_FLOOR * (upper - lower)
    singular = _singular_intervals(f, lower, upper, floor)
    if singular is None:
        return None
    kinks, starts, ends = [], [], []
    scale = upper - lower
    for point in _cluster_points(singular, _RESOLVED_WIDTH * (upper - lower)):
        left = _values(f, point - scale * _SIDE_SAMPLES)
        right = _values(f, point + scale * _SIDE_SAMPLES)
        if not np.any(np.isfinite(left)):
            starts.append(point)
        elif not np.any(np.isfinite(right)):
            ends.append(point)
        elif not _is_pole(f, point, scale):
            kinks.append(point)
    return Analyticity(tuple(kinks), tuple(starts), tuple(ends))


def _values(f: Callable[[np.ndarray], np.ndarray], t: np.ndarray) -> np.ndarray:
    # f at t; where f raises (a function that refuses points outside its domain), row by row
    # and, in a row that raises, point by point, NaN where it raises: such points lie outside
    # the domain like a NaN value.
    with np.errstate(all="ignore"):
        try:
            return np.asarray(f(t), dtype=np.float64)
        except Exception:  # any refusal of f marks points outside its domain
            if t.ndim < 2:
                return np.array([_value_or_nan(f, point) for point in t]).reshape(t.shape)
            return np.stack([_values(f, row) for row in t])


def _value_or_nan(f: Callable[[np.ndarray], np.ndarray], point: float) -> float:
    try:
        return float(np.asarray(f(np.array([point])), dtype=np.float64)[0])
    except Exception:  # as in _values
        return math.nan


def _smooth(t: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Per row of nodes t and values: whether f is finite, with the Chebyshev tail below _SMOOTH
    # of the largest non-constant coefficient plus the rounding noise of f's values (eps |f|,
    # at least the subnormal range) and of its argument (eps |t| |f'|, the slope estimated from
    # the coefficients); and whether the threshold is the noise and the tail within 4x of it.
    finite = np.all(np.isfinite(values), axis=-1)
    values = np.where(finite[:, None], values, 0.0)
    coefficients = np.abs(values @ _TO_COEFFICIENTS.T)
    varying = np.max(coefficients[:, 1:], axis=-1)
    half = 0.5 * (t[:, 0] - t[:, -1]) / _NODES[0]
    with np.errstate(over="ignore"):
        slope = varying / np.where(half > 0.0, half, 1.0)
        noise = _NOISE * (
            np.max(np.abs(values), axis=-1) + np.max(np.abs(t), axis=-1) * slope + _SUBNORMAL
        )
    tail = np.max(coefficients[:, -_TAIL:], axis=-1)
    threshold = _SMOOTH * varying + noise
    limited = finite & (noise > _SMOOTH * varying) & (tail <= 4.0 * threshold)
    return finite & (tail <= threshold), limited


def _on_intervals(
    f: Callable[[np.ndarray], np.ndarray], intervals: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # For intervals (k, 2): whether f is smooth on each, whether its roughness is near the
    # rounding noise, and whether f is finite at any node.
    middle = 0.5 * (intervals[:, 0] + intervals[:, 1])
    half = 0.5 * (intervals[:, 1] - intervals[:, 0])
    t = middle[:, None] + half[:, None] * _NODES
    values = _values(f, t)
    smooth, limited = _smooth(t, values)
    return smooth, limited, np.any(np.isfinite(values), axis=-1)


def _singular_intervals(
    f: Callable[[np.ndarray], np.ndarray], lower: float, upper: float, floor: float
) -> list[tuple[float, float]] | None:
    # Breadth-first bisection of the rough intervals down to width <= floor (or the rounding
    # of their position). A rough interval whose parts are all smooth has a kink at a split
    # point (then the straddling interval is rough) or is smooth at a finer scale; if its
    # roughness was at the rounding noise, the parts are smooth because the values cannot
    # resolve a kink any further, and the interval itself locates the point.
    smooth, limited, _ = _on_intervals(f, np.array([[lower, upper]]))
    if smooth[0]:
        return []
    rough, rough_limited = np.array([[lower, upper]]), limited
    singular: list[tuple[float, float]] = []
    tested = 1
    while rough.size:
        split = rough[:, 0] + _SPLIT * (rough[:, 1] - rough[:, 0])
        quarter = 0.25 * (rough[:, 1] - rough[:, 0])
        parts = [
            np.stack([rough[:, 0], split], axis=1),
            np.stack([split, rough[:, 1]], axis=1),
            np.stack([split - quarter, split + quarter], axis=1),
        ]
        tested += 3 * len(rough)
        if tested > _MAX_INTERVALS:
            return None
        results = [_on_intervals(f, part) for part in parts]
        all_smooth = results[0][0] & results[1][0] & results[2][0]
        # Rough, with smooth parts, at a width an analytic f is resolved long before (a
        # higher-order kink whose signature the rounding of t hides at the next scale).
        tiny = rough[:, 1] - rough[:, 0] <= _RESOLVED_WIDTH * (upper - lower)
        singular.extend(map(tuple, rough[all_smooth & (rough_limited | tiny)]))
        rough_parts = [
            (part[~smooth & finite], limited[~smooth & finite])
            for part, (smooth, limited, finite) in zip(parts, results, strict=True)
        ]
        # The straddling interval only matters when both halves are smooth.
        halves_smooth = results[0][0] & results[1][0]
        rough_parts[2] = (
            parts[2][halves_smooth & ~results[2][0] & results[2][2]],
            results[2][1][halves_smooth & ~results[2][0] & results[2][2]],
        )
        rough = np.concatenate([part for part, _ in rough_parts])
        rough_limited = np.concatenate([flags for _, flags in rough_parts])
        magnitude = np.max(np.abs(rough), axis=1)
        narrow = rough[:, 1] - rough[:, 0] <= np.maximum(floor, _POSITION_NOISE * magnitude)
        singular.extend(map(tuple, rough[narrow]))
        rough, rough_limited = rough[~narrow], rough_limited[~narrow]
    return singular


def _cluster_points(intervals: list[tuple[float, float]], gap: float) -> list[float]:
    # One point per run of intervals less than gap apart: the simplest number in the run.
    runs: list[list[float]] = []
    for a, b in sorted(intervals):
        if runs and a <= runs[-1][1] + gap:
            runs[-1][1] = max(runs[-1][1], b)
        else:
            runs.append([a, b])
    return [_simplest(a, b) for a, b in runs]


def _simplest(a: float, b: float) -> float:
    # The number in [a, b] with the shortest decimal form: 0 if it is there (where kinks and
    # singularities usually are, and where f is then evaluated exactly at its singularity).
    if a <= 0.0 <= b:
        return 0.0
    middle = 0.5 * (a + b)
    for digits in range(1, 18):
        candidate = float(f"{middle:.{digits}g}")
        if a <= candidate <= b:
            return candidate
    return middle


def _is_pole(f: Callable[[np.ndarray], np.ndarray], point: float, scale: float) -> bool:
    # 1/f is smooth around a pole of f (a zero of 1/f), and rough around a kink.
    windows = np.array([[point - w * scale, point + w * scale] for w in _POLE_WINDOWS])
    with np.errstate(all="ignore"):
        smooth, _, _ = _on_intervals(lambda t: 1.0 / _values(f, t), windows)
    return bool(np.any(smooth))
