"""The controls of the series solvers as one value, and the checks of their other arguments.

:class:`SeriesOptions` holds what every series solver shares (the budget, the scale and the
accelerator) and validates it once, when it is made: a solver, an optimizer or the front end
builds one and hands it on unchanged. ``damping`` and ``variant`` define the function being
applied rather than how its series is summed, so they stay arguments of each solver
(:func:`check_damping`, :func:`check_variant`).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields
from typing import Any

from .._core._checks import check_maxiter, check_nonnegative, check_positive_int

__all__ = [
    "ACCELERATIONS",
    "VARIANTS",
    "SeriesOptions",
    "check_acceleration",
    "check_damping",
    "check_variant",
    "resolve_options",
]

ACCELERATIONS = ("wynn", "wynn-sablonniere", "levin", "aitken", "tail", None)
#: The two dampings of ``|A|^-1``: ``(|A| + d I)^-1`` and ``(A^2 + d I)^-1/2``.
VARIANTS = ("damped", "quasi-damped")


@dataclass(frozen=True)
class SeriesOptions:
    """How a series solver sums its series: budget, scale and accelerator (validated).

    Parameters
    ----------
    num_terms : int, optional
        Fixed budget of terms ``N``; with a tolerance also given, the run stops at whichever
        comes first. When neither ``num_terms`` nor ``rtol`` is given, the solvers use
        ``rtol=1e-6``.
    maxiter : int, optional
        Most terms to sum when stopping on a tolerance (default 1000).
    scale : float or {"auto", "lower_bound"}, default "auto"
        The scale ``V`` of ``Z = I - M / V`` (see each solver for ``M`` and ``"auto"``).
    acceleration : {"wynn", "wynn-sablonniere", "levin", "aitken", "tail", None}, default "wynn"
        Accelerator of the partial sums; ``None`` returns the plain partial sum.
    order : int, default 1
        Order ``K`` of the accelerator (``num_terms`` and ``maxiter`` must be ``>= 2K + 1``).

    Raises
    ------
    ValueError
        For ``num_terms`` or ``maxiter`` below 1 (or below ``2 * order + 1`` with an
        accelerator), an unknown ``scale`` or ``acceleration``, a non-finite or non-positive
        numeric scale, or ``order < 1`` (``order != 1`` for ``"aitken"``).
    TypeError
        For a non-integer ``num_terms``, ``maxiter`` or ``order``, or a ``scale`` that is
        neither a string nor a real number.

    Notes
    -----
    Stopping and estimates: after ``N`` terms the plain estimate is the geometric tail
    ``|prefactor| |c_N| ||v_N|| r / (1 - r)`` with ``r = ||v_N|| / ||v_{N-1}||``; the
    accelerated estimate is the change of the accelerated value over the last term. The value
    with the smaller estimate is returned (per column). Estimates do not include rounding
    errors, so ``rtol`` should stay well above the dtype's epsilon. ``||v_n||`` cannot
    increase when the series converges, so any growth beyond rounding stops the run with
    ``Status.DIVERGED`` (or ``Status.INDEFINITE`` where it proves a negative eigenvalue of a
    positive definite method's operator).

    The estimates are estimates, not bounds: the observed ratio ``r`` reflects the components
    that dominate ``v_N`` so far. When ``b`` has a tiny weight on an eigenvector with a much
    smaller ``|lambda|`` than the rest, the run can stop with ``SUCCESS`` before that slow
    component shows (an outside review built a case with the true error 130x the estimate).
    Use a Krylov method (:func:`hvpseries.abs_inv`) when the error must be certain. Where the
    coefficients decay only like ``n^{-3/2}`` (a zero eigenvalue of the damped
    :func:`abs_inv`, or of :func:`sqrt`), a component converges like ``N^{-1/2}`` and tolerance
    runs end at ``maxiter`` with a large estimate: ``acceleration="tail"`` or
    ``"wynn-sablonniere"`` help.

    Examples
    --------
    >>> import numpy as np
    >>> from hvpseries import series
    >>> options = series.SeriesOptions(num_terms=40, acceleration=None)
    >>> result = series.neumann(np.diag([1.0, 2.0]), np.ones(2), options=options)
    >>> result.n_iter, result.info["acceleration"]
    (40, None)
    """

    num_terms: int | None = None
    maxiter: int | None = None
    scale: float | str = "auto"
    acceleration: str | None = "wynn"
    order: int = 1

    def __post_init__(self) -> None:
        check_positive_int(self.num_terms, "num_terms", allow_none=True)
        check_maxiter(self.maxiter)
        check_scale(self.scale)
        check_acceleration(self.acceleration, self.order)
        if self.acceleration is not None:
            needed = 2 * self.order + 1
            for name, value in (("num_terms", self.num_terms), ("maxiter", self.maxiter)):
                if value is not None and value < needed:
                    message = (
                        f"acceleration={self.acceleration!r} with order={self.order} uses the "
                        f"last 2*order+1 = {needed} partial sums, so {name} must be >= "
                        f"{needed}, got {value}; lower order or pass acceleration=None"
                    )
                    raise ValueError(message)


_DEFAULTS = {field.name: field.default for field in fields(SeriesOptions)}


def resolve_options(
    options: Any, num_terms: Any, maxiter: Any, scale: Any, acceleration: Any, order: Any
) -> SeriesOptions:
    """Return ``options``, or the :class:`SeriesOptions` of a solver's keywords.

    A solver's keywords ``num_terms``, ``maxiter``, ``scale``, ``acceleration`` and ``order``
    and its ``options=`` are two ways to give the same values: with ``options`` the keywords
    must keep their defaults.

    Raises
    ------
    TypeError
        If ``options`` is neither None nor a :class:`SeriesOptions`, or comes with a keyword
        that differs from its default.
    ValueError, TypeError
        As :class:`SeriesOptions`, for bad keyword values.
    """
    controls = {
        "num_terms": num_terms,
        "maxiter": maxiter,
        "scale": scale,
        "acceleration": acceleration,
        "order": order,
    }
    if options is None:
        return SeriesOptions(**controls)
    if not isinstance(options, SeriesOptions):
        message = f"options must be a SeriesOptions or None, got {type(options).__name__}"
        raise TypeError(message)
    given = [name for name, value in controls.items() if not _is_default(name, value)]
    if given:
        message = (
            f"options=SeriesOptions(...) and {', '.join(given)} were both given; pass these "
            "controls either in options or as keywords, not both"
        )
        raise TypeError(message)
    return options


def _is_default(name: str, value: Any) -> bool:
    default = _DEFAULTS[name]
    return value is default or (type(value) is type(default) and value == default)


def check_damping(damping: Any) -> float:
    """Return ``damping`` as a float after checking it is a finite number >= 0."""
    return check_nonnegative(damping, "damping")


def check_variant(variant: Any) -> str:
    """Return ``variant`` after checking it is ``"damped"`` or ``"quasi-damped"``.

    Raises
    ------
    ValueError
        For any other value.
    """
    if variant not in VARIANTS:
        message = f"variant must be 'damped' or 'quasi-damped', got {variant!r}"
        raise ValueError(message)
    return variant


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


def check_acceleration(acceleration: Any, order: Any) -> None:
    """Validate ``acceleration`` and ``order``."""
    from ..acceleration._wynn import check_order

    if acceleration not in ACCELERATIONS:
        message = (
            "acceleration must be 'wynn', 'wynn-sablonniere', 'levin', 'aitken', 'tail' or None, "
            f"got {acceleration!r}"
        )
        raise ValueError(message)
    check_order(order)
    if acceleration == "aitken" and order != 1:
        message = f"acceleration='aitken' has order 1 only, got order={order!r}"
        raise ValueError(message)
