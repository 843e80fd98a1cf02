"""Argument checks shared by the series solvers (validated once, at the API boundary)."""

from __future__ import annotations

import math
import numbers
from typing import Any

from .._core._checks import check_maxiter, check_nonnegative, check_positive_int, check_tolerances
from ._engine import check_acceleration

__all__ = ["check_damping", "check_series_arguments"]


def check_damping(damping: Any) -> float:
    """Return ``damping`` as a float after checking it is a finite number >= 0."""
    return check_nonnegative(damping, "damping")


def check_scale(scale: Any) -> None:
    """Raise unless ``scale`` is ``"auto"``, ``"lower_bound"`` or a finite float > 0."""
    if isinstance(scale, str):
        if scale not in ("auto", "lower_bound"):
            message = f"scale must be 'auto', 'lower_bound' or a number > 0, got {scale!r}"
            raise ValueError(message)
        return
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        message = f"scale must be 'auto', 'lower_bound' or a number > 0, got {scale!r}"
        raise TypeError(message)
    if not math.isfinite(scale) or scale <= 0:
        message = f"a numeric scale must be finite and > 0, got {scale!r}"
        raise ValueError(message)


def check_series_arguments(
    *,
    num_terms: Any,
    rtol: Any,
    atol: Any,
    maxiter: Any,
    scale: Any,
    acceleration: Any,
    order: Any,
    callback: Any,
) -> None:
    """Validate the controls every series solver shares."""
    check_positive_int(num_terms, "num_terms", allow_none=True)
    check_tolerances(rtol, atol, rtol_may_be_none=True)
    check_maxiter(maxiter)
    check_scale(scale)
    check_acceleration(acceleration, order)
    if acceleration is not None:
        needed = 2 * order + 1
        for name, value in (("num_terms", num_terms), ("maxiter", maxiter)):
            if value is not None and value < needed:
                message = (
                    f"acceleration={acceleration!r} with order={order} uses the last "
                    f"2*order+1 = {needed} partial sums, so {name} must be >= {needed}, got "
                    f"{value}; lower order or pass acceleration=None"
                )
                raise ValueError(message)
    if callback is not None and not callable(callback):
        message = f"callback must be callable or None, got {type(callback).__name__}"
        raise TypeError(message)
