"""Scalar argument checks shared by every tier: tolerances, counts, pairs, choices and hooks."""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = [
    "check_choice",
    "check_hooks",
    "check_maxiter",
    "check_nonnegative",
    "check_positive_int",
    "check_real_pair",
    "check_tolerances",
]


def check_tolerances(rtol: Any, atol: Any, *, rtol_may_be_none: bool = False) -> None:
    """Raise unless ``rtol`` and ``atol`` are finite non-negative numbers.

    Raises
    ------
    TypeError
        If a tolerance is not a real number.
    ValueError
        If a tolerance is negative, NaN or infinite.
    """
    for name, value in (("rtol", rtol), ("atol", atol)):
        if value is None and (name == "rtol" and rtol_may_be_none):
            continue
        _check_finite_nonnegative(value, name, "a real number")


def check_nonnegative(value: Any, name: str) -> float:
    """Return ``value`` as a float after checking it is a finite real number >= 0.

    Raises
    ------
    TypeError
        If ``value`` is not a real number.
    ValueError
        If it is negative, NaN or infinite.
    """
    _check_finite_nonnegative(value, name, "a real number >= 0")
    return float(value)


def _check_finite_nonnegative(value: Any, name: str, expected_type: str) -> None:
    """Raise unless ``value`` is a finite real number >= 0; ``expected_type`` is for the message."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        message = f"{name} must be {expected_type}, got {value!r}"
        raise TypeError(message)
    if not math.isfinite(value) or value < 0:
        message = f"{name} must be finite and >= 0, got {value!r}"
        raise ValueError(message)


def check_real_pair(pair: Any, name: str) -> tuple[float, float]:
    """Return ``pair`` as two finite floats ``(lo, hi)`` (an interval, a range of magnitudes).

    Raises
    ------
    TypeError
        If ``pair`` is not a pair of real numbers.
    ValueError
        If a bound is NaN or infinite.
    """
    try:
        lo, hi = pair
    except (TypeError, ValueError) as error:
        message = f"{name} must be a pair (lo, hi), got {pair!r}"
        raise TypeError(message) from error
    for value in (lo, hi):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            message = f"{name} must hold two real numbers, got {pair!r}"
            raise TypeError(message)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        message = f"{name} must be finite, got {pair!r}"
        raise ValueError(message)
    return float(lo), float(hi)


def check_positive_int(value: Any, name: str, *, allow_none: bool = False) -> None:
    """Raise unless ``value`` is an integer >= 1 (or ``None`` when allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        message = f"{name} must be an integer >= 1, got {value!r}"
        raise TypeError(message)
    if value < 1:
        message = f"{name} must be an integer >= 1, got {value!r}"
        raise ValueError(message)


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> None:
    """Raise unless ``value`` is one of the named options ``choices``.

    Parameters
    ----------
    value : object
        The value given for the argument.
    name : str
        The argument's name, for the message.
    choices : tuple of str
        The accepted values, listed in the message.

    Raises
    ------
    ValueError
        If ``value`` is not in ``choices``.
    """
    if value not in choices:
        message = f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}"
        raise ValueError(message)


def check_hooks(**hooks: Any) -> None:
    """Raise ``TypeError`` unless each hook (``callback=``, ``progress=``) is callable or None."""
    for name, hook in hooks.items():
        if hook is not None and not callable(hook):
            message = f"{name} must be callable or None, got {hook!r}"
            raise TypeError(message)


def check_maxiter(maxiter: Any) -> None:
    """Raise unless ``maxiter`` is ``None`` or an integer >= 1."""
    check_positive_int(maxiter, "maxiter", allow_none=True)
