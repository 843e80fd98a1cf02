"""A randomised symmetry check for untagged matrix-free operators: u^T A v against v^T A u."""

from __future__ import annotations

import math
import weakref
from typing import Any

import numpy as np

from .._core._array_api import dtype_name, epsilon, host_values, is_complex_dtype
from .._operators._base import LinearOperator

__all__ = ["probe_symmetry"]

# Operators that passed the probe (by identity, while they live): one probe per operator.
_PROBED: weakref.WeakSet[LinearOperator] = weakref.WeakSet()
_SEED = 20_241_207


def probe_symmetry(operator: Any, method: str) -> int:
    """Check an untagged matrix-free operator for symmetry; return the matvecs spent.

    Two products with random vectors ``u``, ``v`` (a fixed seed) give ``u^H A v`` and
    ``v^H A u``; their difference is rounding for a Hermitian ``A``. Relative to
    ``||u|| ||A v|| + ||v|| ||A u||`` it must stay below ``max(1000, 100 sqrt(n)) eps``.
    Anything but a :class:`LinearOperator` (a plain matrix, checked by the solver), explicit
    matrices (checked entry by entry), tagged operators and operators probed before cost
    nothing (0 is returned).

    Raises
    ------
    ValueError
        If the operator is clearly not symmetric, saying by how much and how to opt out.
    """
    from .._operators._explicit import MatrixOperator

    if (
        not isinstance(operator, LinearOperator)
        or operator.symmetric is not None
        or isinstance(operator, MatrixOperator)
        or not operator.is_square
        or operator in _PROBED
    ):
        return 0
    xp, space = operator.xp, operator.vector_space
    rng = np.random.default_rng(_SEED)
    n = operator.shape[1]
    pair = rng.standard_normal((2, n))
    if is_complex_dtype(xp, operator.dtype):
        pair = pair + 1j * rng.standard_normal((2, n))
    u, v = (xp.asarray(row, dtype=operator.dtype, device=operator.device) for row in pair)
    Au, Av = operator.matvec(u), operator.matvec(v)
    values = host_values(
        xp.stack(
            [
                xp.abs(space.inner(u, Av) - space.inner(v, Au)),
                space.norm(u) * space.norm(Av) + space.norm(v) * space.norm(Au),
            ]
        )
    )
    difference, scale = float(values[0]), float(values[1])
    global_n = operator.global_shape[1]
    limit = max(1000.0, 100.0 * math.sqrt(global_n)) * epsilon(xp, operator.dtype)
    if math.isfinite(scale) and scale > 0 and difference > limit * scale:
        message = (
            f"{method} needs a symmetric operator, but for random u, v "
            f"|u^H A v - v^H A u| / (||u|| ||A v|| + ||v|| ||A u||) = {difference / scale:.3g} "
            f"(above {limit:.1e} for {dtype_name(operator.dtype)}); fix the operator, or tag "
            "it with A.with_structure(symmetric=True) to skip this check if it is symmetric"
        )
        raise ValueError(message)
    _PROBED.add(operator)  # a refused operator is probed (and refused) again on every call
    return 2
