"""The quadratic model of the saddle-free Newton step: its learning rate and momentum.

Spec section 6 (as in K-FAC): the update ``alpha u + mu delta`` (``u`` the direction,
``delta`` the previous update) minimises the quadratic model of the loss in the metric
``C = |H| + d I``, with the Gram entries estimated from ``C u ~ g``. The model's predicted
change is what the Levenberg-Marquardt damping update compares the actual change with.
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["combination", "model_minimiser", "rates"]


def model_minimiser(ug: float, cross: float, q: float, gd: float) -> tuple[float, float]:
    """Minimise the quadratic model over ``alpha u + mu delta`` (``delta`` the previous update).

    Solves ``[[u.Cu, u.C delta], [u.C delta, delta.C delta]] [alpha, mu] = [u.g, delta.g]``
    with the Gram entries approximated by ``ug``, ``cross`` and ``q``. The true Gram matrix (in
    the metric ``C = |H| + dI``) is positive definite; when the approximation is not, the
    model has no minimiser and the step falls back to the minimiser along ``u`` alone:
    ``alpha = 1``, ``mu = 0``.
    """
    determinant = ug * q - cross * cross
    finite = all(math.isfinite(value) for value in (ug, cross, q, gd, determinant))
    if not finite or ug <= 0 or q <= 0 or determinant <= 1e-12 * ug * q:
        return 1.0, 0.0
    return (ug * q - cross * gd) / determinant, (ug * gd - cross * ug) / determinant


def combination(
    vector: torch.Tensor, alpha: float, previous: torch.Tensor, mu: float
) -> torch.Tensor:
    """Return ``alpha vector + mu previous``, skipping the exact no-ops of ``1`` and ``0``."""
    scaled = vector if alpha == 1.0 else vector * alpha
    return scaled if mu == 0.0 else scaled + previous * mu


def rates(
    group: dict[str, Any],
    state: dict[str, Any],
    direction: torch.Tensor,
    gradient: torch.Tensor,
) -> tuple[float, float, float]:
    """Return ``alpha``, ``mu`` and the quadratic model's predicted loss change.

    ``group`` holds the settings (``adaptive``, ``lr``, ``momentum``), ``state`` the previous
    update, the running estimate of its curvature product and the count of steps taken.
    """
    previous, curvature = state["previous_update"], state["curvature_times_update"]
    ug = float(torch.dot(direction, gradient))
    gd = float(torch.dot(gradient, previous))
    # Spec section 6: u.C.delta ~ g.delta (as C u ~ g) and delta.C.delta ~ delta.buf, buf the
    # running estimate of C delta (q = 1 before any step). The spec's listing multiplies q by
    # alpha_prev, one of the original code's flaws: buf already tracks C delta exactly on a
    # quadratic (buf <- mu buf + alpha g as delta <- alpha u + mu delta).
    cross = gd
    q = float(torch.dot(previous, curvature))
    q = 1.0 if q == 0 else q
    if not group["adaptive"]:
        alpha, mu = group["lr"], group["momentum"]
    elif state["n_step"] == 0:  # no previous update yet: alpha = 1, mu = 0
        alpha, mu = 1.0, 0.0
    else:
        alpha, mu = model_minimiser(ug, cross, q, gd)
    predicted = 0.5 * (alpha**2 * ug + 2 * alpha * mu * cross + mu**2 * q) - alpha * ug - mu * gd
    return alpha, mu, predicted
