"""Right-hand sides so small or large that their squared norms underflow or overflow.

Every solver reduces vectors through inner products. For a float32 ``b`` with entries near
``1e-23`` the squared norm underflows to zero, so ``b`` looks like the zero vector and the
answer would be ``x = 0``, silently; near ``1e20`` it overflows and ``b`` looks non-finite.
The functions ``f(A) b`` are linear in ``b``, so such a solve runs on ``s b`` instead, with
``s`` a power of two per column (exact: no rounding is added) that brings each norm near 1,
and ``x``, the error estimates and the residual norms are divided by ``s`` afterwards. Columns
whose norms are in range are left untouched, so well-scaled problems give bit-identical results
at the cost of one norm of ``b``.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ._array_api import array_namespace, device, host_values, is_array
from ._linear_operator import LinearOperator
from ._vector_space import VectorSpace

__all__ = ["scales_right_hand_side"]

# Norms within 2**(e/2 -+ 4) of the dtype's exponent range e have squares well inside it.
_MARGIN = 4.0
# Rounds of rescaling by the square root of the range: two bring even the smallest subnormal
# (or the largest finite) entries into range; a column still of norm 0 is exactly zero.
_ROUNDS = 2


def scales_right_hand_side(
    *, callback: str = "iterate"
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a solver ``solver(A, b, ..., atol=)`` (and ``x0=``, ``callback=``, ``throw=``).

    ``callback="iterate"``: the solver's callback receives iterates, given to the caller's
    unscaled; ``"estimate"``: it receives ``(count, error_estimate)``
    (:func:`~hvpseries.krylov.funm_lanczos`), the estimate unscaled.
    """
    if callback not in ("iterate", "estimate"):
        message = f"callback must be 'iterate' or 'estimate', got {callback!r}"
        raise ValueError(message)
    return functools.partial(_decorate, estimate_callback=callback == "estimate")


def _decorate(solver: Callable[..., Any], *, estimate_callback: bool) -> Callable[..., Any]:
    signature = inspect.signature(solver)
    operator_name = next(iter(signature.parameters))
    defaults = {
        name: parameter.default
        for name, parameter in signature.parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }

    @functools.wraps(solver)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            return solver(*args, **kwargs)  # the solver's own error for a wrong call
        arguments = bound.arguments
        scales = _rhs_scales(arguments.get(operator_name), arguments.get("b"))
        if scales is None:
            return solver(*args, **kwargs)
        b = arguments["b"]
        xp = array_namespace(b)
        factor = _as_factor(xp, b, scales)
        arguments["b"] = b * factor
        if is_array(arguments.get("x0")):
            arguments["x0"] = arguments["x0"] * factor
        atol = arguments.get("atol", defaults.get("atol"))
        if "atol" in signature.parameters and atol is not None:
            arguments["atol"] = _scaled_tolerance(atol, scales)
        user_callback = arguments.get("callback")
        if user_callback is not None and callable(user_callback):
            arguments["callback"] = _unscaling_callback(
                user_callback, xp, b, scales, estimate_callback
            )
        throw = bool(arguments.get("throw", defaults.get("throw", False)))
        if "throw" in signature.parameters:
            arguments["throw"] = False
        result = solver(*bound.args, **bound.kwargs)
        result = _unscaled(xp, b, result, scales)
        return result.raise_for_status() if throw else result

    return wrapper


def _rhs_scales(A: Any, b: Any) -> np.ndarray | None:
    """Per-column powers of two for ``b``, or None if every column is fine as it is.

    None also for input the solver will refuse or report itself (not an array, wrong shape,
    non-finite entries).
    """
    if not is_array(b) or getattr(b, "ndim", 0) not in (1, 2):
        return None
    try:
        xp = array_namespace(b)
        if not xp.isdtype(b.dtype, ("real floating", "complex floating")):
            return None
        shape = getattr(A, "shape", None)
        if shape is None or len(shape) != 2 or b.shape[0] != shape[1]:
            return None
        # an operator's own space (sharded vectors); plain matrices act on whole local vectors
        if isinstance(A, LinearOperator):
            if A.xp is not xp:
                return None
            space = A.vector_space
        else:
            space = VectorSpace(xp)
        finfo = xp.finfo(b.dtype)
    except (TypeError, ValueError):
        return None
    low = 0.5 * math.log2(float(finfo.smallest_normal)) + _MARGIN
    high = 0.5 * math.log2(float(finfo.max)) - _MARGIN
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # the cases sought
        norms = host_values(space.norm(b))
        exponents = np.log2(norms)
    suspicious = ~((exponents >= low) & (exponents <= high))
    if not np.any(suspicious) or not space.all_finite(b):
        return None
    scales = np.ones(norms.shape)
    step = 2.0 ** math.floor(high)
    for _ in range(_ROUNDS):
        scales[suspicious & (exponents < low)] *= step
        scales[suspicious & (exponents > high)] /= step
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            norms = host_values(space.norm(b * _as_factor(xp, b, scales)))
            exponents = np.log2(norms)
        suspicious &= ~((exponents >= low) & (exponents <= high))
        if not np.any(suspicious):
            break
    rescaled = (scales != 1.0) & np.isfinite(exponents) & ~suspicious
    scales[rescaled] *= 2.0 ** -np.round(exponents[rescaled])
    scales[~rescaled] = 1.0  # zero columns (and any left out of range) stay as they are
    return scales if np.any(scales != 1.0) else None


def _as_factor(xp: Any, b: Any, scales: np.ndarray) -> Any:
    if b.ndim == 1:
        return float(scales[0])
    return xp.asarray(scales, dtype=b.dtype, device=device(b))


def _scaled_tolerance(atol: Any, scales: np.ndarray) -> Any:
    """One absolute tolerance for all columns: the smallest scaled one holds for each."""
    if isinstance(atol, bool) or not isinstance(atol, (int, float)):
        return atol  # the solver refuses it with its own message
    return float(atol) * float(np.min(scales))


def _per_column(value: Any, inverse: np.ndarray) -> Any:
    """Unscale an absolute quantity of the scaled solve (per column, per shift)."""
    if value is None:
        return None
    if np.ndim(value) == 0:
        return float(value) * float(inverse[0])
    return np.asarray(value, dtype=float) * inverse


def _unscaling_callback(
    callback: Callable[..., Any], xp: Any, b: Any, scales: np.ndarray, estimate: bool
) -> Callable[..., Any]:
    inverse = 1.0 / scales
    if estimate:
        return lambda count, value: callback(count, _per_column(value, inverse))
    factor = _as_factor(xp, b, inverse)
    return lambda x: callback(x * factor)


def _unscaled(xp: Any, b: Any, result: Any, scales: np.ndarray) -> Any:
    inverse = 1.0 / scales

    def per_column(value: Any) -> Any:
        return _per_column(value, inverse)

    info = dict(result.info)
    if "plain_error_estimate" in info:
        info["plain_error_estimate"] = per_column(info["plain_error_estimate"])
    info["rhs_scale"] = float(scales[0]) if b.ndim == 1 else scales.tolist()
    return dataclasses.replace(
        result,
        x=result.x * _as_factor(xp, b, inverse),
        error_estimate=per_column(result.error_estimate),
        residual_norm=per_column(result.residual_norm),
        info=info,
    )
