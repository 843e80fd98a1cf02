"""How long the runs of an optimizer comparison train: epochs, or a time budget and its marks."""

from __future__ import annotations

import bisect
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFAULT_TIME_POINTS", "MAX_TIME_POINTS", "TimeBudget", "schedule"]

# The number of epochs of a run without a time budget, when none is given.
DEFAULT_EPOCHS = 10
DEFAULT_TIME_POINTS = 20
# One row per mark in every run's history: the cap keeps a record a few megabytes at most.
MAX_TIME_POINTS = 10_000


@dataclass(frozen=True)
class TimeBudget:
    """Seconds of optimizer time per optimizer, and the marks at which the losses are evaluated.

    Parameters
    ----------
    seconds : float
        Optimizer time each optimizer trains for: the time of its steps (forward, backward,
        HVPs, the update), never the evaluation.
    time_points : int, default 20
        The number of equally spaced time marks ``seconds * k / time_points`` for
        ``k = 1, ..., time_points``; the last mark is ``seconds`` itself.

    Raises
    ------
    TypeError
        When ``seconds`` is not a real number.
    ValueError
        When ``seconds`` is not finite and positive, or ``time_points`` is not an integer in
        ``[1, MAX_TIME_POINTS]``.

    Examples
    --------
    >>> budget = TimeBudget(2.0, 4)
    >>> budget.marks
    (0.5, 1.0, 1.5, 2.0)
    >>> budget.marks_reached(1.2)
    2
    """

    seconds: float
    time_points: int = DEFAULT_TIME_POINTS
    marks: tuple[float, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        seconds, time_points = self.seconds, self.time_points
        if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real):
            message = f"seconds must be a real number, got {type(seconds).__name__} {seconds!r}"
            raise TypeError(message)
        if not (math.isfinite(seconds) and seconds > 0):
            message = f"seconds must be finite and > 0, got {seconds!r}"
            raise ValueError(message)
        if (
            isinstance(time_points, bool)
            or not isinstance(time_points, int)
            or not 1 <= time_points <= MAX_TIME_POINTS
        ):
            message = (
                f"time_points must be an integer from 1 to {MAX_TIME_POINTS}, got {time_points!r}"
            )
            raise ValueError(message)
        object.__setattr__(self, "seconds", float(seconds))
        # k / time_points is exactly 1 for the last mark, which is therefore exactly seconds.
        marks = tuple(self.seconds * (k / time_points) for k in range(1, time_points + 1))
        object.__setattr__(self, "marks", marks)

    def marks_reached(self, elapsed: float) -> int:
        """Return how many marks lie at or before ``elapsed`` seconds of optimizer time."""
        return bisect.bisect_right(self.marks, elapsed)

    def summary(self) -> dict[str, Any]:
        """Return the budget as the JSON-friendly ``config["budget"]`` entry of a record."""
        return {
            "seconds": self.seconds,
            "time_points": self.time_points,
            "time_marks": list(self.marks),
        }


def schedule(
    epochs: int | None, batch_size: int, seconds: float | None, time_points: int | None
) -> tuple[int | None, TimeBudget | None]:
    """Check the batch size; return the number of epochs to run and the time budget."""
    _check_positive_integers(batch_size=batch_size)
    budget = _time_budget(seconds, time_points)
    return _epoch_limit(epochs, budget), budget


def _time_budget(seconds: float | None, time_points: int | None) -> TimeBudget | None:
    """Return the time budget of ``seconds`` with ``time_points`` marks, or None without one."""
    if seconds is None:
        if time_points is not None:
            message = f"time_points={time_points!r} needs seconds: the marks divide a time budget"
            raise ValueError(message)
        return None
    return TimeBudget(seconds, DEFAULT_TIME_POINTS if time_points is None else time_points)


def _epoch_limit(epochs: int | None, budget: TimeBudget | None) -> int | None:
    """Return the number of epochs to run (None: as many as the time budget allows)."""
    if epochs is None:
        return None if budget is not None else DEFAULT_EPOCHS
    _check_positive_integers(epochs=epochs)
    return epochs


def _check_positive_integers(**values: Any) -> None:
    for label, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            message = f"{label} must be a positive integer, got {value!r}"
            raise ValueError(message)
