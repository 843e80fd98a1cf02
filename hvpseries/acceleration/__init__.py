"""Convergence acceleration of scalar and vector sequences (partial sums of series).

Sequence transformations that estimate the limit of a slowly converging sequence from a few of
its last entries, on any array backend:

- :func:`wynn_epsilon`: Wynn's epsilon algorithm (iterated Shanks), vector form with the
  Samelson inverse, optionally with Sablonniere's modification;
- :func:`levin`: Levin's t, u and v transformations;
- :func:`aitken`: Aitken's delta-squared process.

The series solvers of :mod:`hvpseries.series` apply them to their partial sums
(``acceleration="wynn" | "levin" | "aitken"``).
"""

from ._aitken import aitken
from ._levin import levin
from ._wynn import wynn_epsilon

__all__ = ["aitken", "levin", "wynn_epsilon"]
