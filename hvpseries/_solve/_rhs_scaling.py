"""Right-hand sides (and vectors) so small or large that their squared norms under/overflow.

Every solver reduces vectors through inner products. For a float32 ``b`` with entries near
``1e-23`` the squared norm underflows to zero, so ``b`` looks like the zero vector and the
answer would be ``x = 0``, silently; near ``1e20`` it overflows and ``b`` looks non-finite; and
well before that, residuals ``rtol`` times smaller than ``b`` lose their inner products. The
functions ``f(A) b`` are linear in ``b``, so such a solve runs on ``s b`` instead, with ``s`` a
power of two per column (exact: no rounding is added) that brings each norm near 1, and ``x``,
the error estimates and the residual norms are divided by ``s`` afterwards. Columns whose norms
are within the middle half of the dtype's exponent range (float32: ``2^-31 .. 2^32``, float64:
``2^-255 .. 2^256``) are left untouched, so well-scaled problems give bit-identical results at
the cost of one norm of ``b``. ``pose`` applies the scaling and ``finish`` undoes it
(``_problem.py``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy as np

from .._core._array_api import backend_name, device, host_values
from .._core._result import Status
from .._core._vector_space import VectorSpace

__all__ = [
    "accurate_norm",
    "as_factor",
    "balancing_scales",
    "log2_norms",
    "unscale_per_column",
    "unscaled",
    "with_relative_estimate",
]

# Rounds of rescaling by the square root of the range: two bring even the smallest subnormal
# (or the largest finite) entries into range; a column still of norm 0 is exactly zero.
_ROUNDS = 2


def with_relative_estimate(result: Any, space: VectorSpace) -> Any:
    """Add ``error_estimate / ||x||`` (per column) where the solver has an estimate."""
    estimate, x = result.error_estimate, result.x
    if estimate is None or result.relative_error_estimate is not None or x.ndim not in (1, 2):
        return result
    with np.errstate(over="ignore", invalid="ignore"):
        norms = host_values(space.xp.reshape(space.norm(x), (-1,)))
        values = np.asarray(estimate, dtype=np.float64).reshape(-1)
        if values.shape != norms.shape:
            return result
        safe = np.where(norms > 0, norms, 1.0)
        relative = np.where(norms > 0, values / safe, np.where(values == 0, 0.0, np.inf))
    value = float(relative[0]) if np.ndim(estimate) == 0 else relative
    return dataclasses.replace(result, relative_error_estimate=value)


def log2_norms(space: VectorSpace, x: Any, norms: np.ndarray | None = None) -> np.ndarray:
    """``log2`` of the column norms of finite ``x``; an overflowing one is ``+inf``.

    (The complex inner product of huge entries overflows to ``nan + nan j``, not ``inf``.)
    ``norms``: the host values of ``space.norm(x)`` where the caller has them already.
    """
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # the cases sought
        exponents = np.log2(host_values(space.norm(x)) if norms is None else norms)
    return np.where(np.isnan(exponents), np.inf, exponents)


def balancing_scales(
    space: VectorSpace, x: Any, finfo: Any, exponents: np.ndarray | None = None
) -> np.ndarray | None:
    """Powers of two per column that bring the norms of finite ``x`` near 1.

    Only columns whose norms are outside the middle half of the exponent range get a scale
    other than 1 (None if there are none, or if ``x`` has a non-finite entry). ``exponents``:
    :func:`log2_norms` of ``x`` where the caller has them already (``x`` is then known to be
    finite).
    """
    xp = space.xp
    smallest, largest = math.log2(float(finfo.smallest_normal)), math.log2(float(finfo.max))
    low, high = smallest / 4, largest / 4  # the middle half of the exponent range
    known_finite = exponents is not None
    if exponents is None:
        exponents = log2_norms(space, x)
    suspicious = ~((exponents >= low) & (exponents <= high))
    if not np.any(suspicious) or not (known_finite or space.all_finite(x)):
        return None
    scales = np.ones(exponents.shape)
    step = 2.0 ** (math.floor(largest / 2) - 2)  # two steps stay finite in the dtype
    for _ in range(_ROUNDS):
        scales[suspicious & (exponents < low)] *= step
        scales[suspicious & (exponents > high)] /= step
        exponents = log2_norms(space, x * as_factor(xp, x, scales))
        suspicious &= ~((exponents >= low) & (exponents <= high))
        if not np.any(suspicious):
            break
    rescaled = (scales != 1.0) & np.isfinite(exponents) & ~suspicious
    # bring the norm near 1, but keep the scale itself a finite number of the dtype
    limit = math.floor(largest) - 1
    powers = np.clip(np.log2(scales[rescaled]) - np.round(exponents[rescaled]), -limit, limit)
    scales[rescaled] = 2.0**powers
    scales[~rescaled] = 1.0  # zero columns (and any left out of range) stay as they are
    return scales if np.any(scales != 1.0) else None


# Array libraries computing on NumPy, whose overflow warnings accurate_norm silences.
_WARNING_BACKENDS = ("numpy", "array_api_strict")


def accurate_norm(space: VectorSpace, x: Any) -> float:
    """Return ``||x||`` of a vector as a float, also where ``x . x`` under- or overflows.

    The plain norm is kept where its square cannot have lost accuracy (underflowed terms
    below ``eps`` of it, no overflow); otherwise it is recomputed on a power-of-two multiple
    of ``x`` (a few more passes, only in that case). For the norms of a solver's own vectors,
    e.g. the Lanczos ``beta`` of a badly scaled operator.
    """
    if backend_name(space.xp) in _WARNING_BACKENDS:
        with np.errstate(over="ignore", invalid="ignore"):  # the cases handled below
            value = float(space.norm(x))
    else:  # only NumPy-based arrays warn on overflow (entering errstate costs microseconds)
        value = float(space.norm(x))
    low, high = _plain_norm_range(space.xp, x.dtype, space.global_length(x.shape[0]))
    if low <= value <= high:
        return value
    scales = balancing_scales(space, x, space.xp.finfo(x.dtype))
    if scales is None:
        return value
    with np.errstate(over="ignore", invalid="ignore"):
        return float(space.norm(x * float(scales[0]))) / float(scales[0])


@functools.lru_cache(maxsize=64)
def _plain_norm_range(xp: Any, dtype: Any, length: int) -> tuple[float, float]:
    """Norms whose squares are exact to rounding for vectors of ``length`` entries.

    Entries whose squares underflow add at most ``length * smallest_normal`` to the square,
    below ``eps`` of it above the lower end; the square overflows above the upper end.
    """
    finfo = xp.finfo(dtype)
    tiny, eps = float(finfo.smallest_normal), float(finfo.eps)
    return math.sqrt(tiny * max(length, 1) / eps), math.sqrt(float(finfo.max) / 2)


def as_factor(xp: Any, b: Any, scales: np.ndarray) -> Any:
    """Return per-column ``scales`` as a factor for ``b``: a float, or a device array."""
    if b.ndim == 1:
        return float(scales[0])
    return xp.asarray(scales, dtype=b.dtype, device=device(b))


def unscale_per_column(value: Any, inverse: np.ndarray) -> Any:
    """Unscale an absolute quantity of the scaled solve (per column, per shift)."""
    if value is None:
        return None
    if np.ndim(value) == 0:
        return float(value) * float(inverse[0])
    return np.asarray(value, dtype=float) * inverse


def unscaled(xp: Any, b: Any, result: Any, scales: np.ndarray, space: VectorSpace) -> Any:
    """Return the result of the scaled solve for the caller's ``b``.

    Scaled back up, ``x`` can overflow (the answer is beyond the dtype's range): a converged
    status then becomes ``NONFINITE``, as for the unscaled solve.
    """
    inverse = 1.0 / scales

    def per_column(value: Any) -> Any:
        return unscale_per_column(value, inverse)

    info = dict(result.info)
    if "plain_error_estimate" in info:
        info["plain_error_estimate"] = per_column(info["plain_error_estimate"])
    info["rhs_scale"] = float(scales[0]) if b.ndim == 1 else scales.tolist()
    with np.errstate(over="ignore"):
        x = result.x * as_factor(xp, b, inverse)
    status = result.status
    if status.usable and np.any(scales < 1.0) and not space.all_finite(x):
        status = Status.NONFINITE
        info["advice"] = (
            "the solution overflows the dtype: its entries exceed the largest "
            f"{xp.finfo(b.dtype).max:.3g}; scale b down or use a wider dtype"
        )
    return dataclasses.replace(
        result,
        x=x,
        status=status,
        error_estimate=per_column(result.error_estimate),
        residual_norm=per_column(result.residual_norm),
        info=info,
    )
