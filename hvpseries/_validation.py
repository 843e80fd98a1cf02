"""Checks shared by the solvers: tolerances, iteration limits, right-hand sides, symmetry."""

from __future__ import annotations

import math
import numbers
from typing import Any

from ._array_api import (
    array_namespace,
    backend_name,
    check_floating_dtype,
    device,
    dtype_name,
    epsilon,
    is_complex_dtype,
    same_device,
)
from ._conversion import aslinearoperator
from ._linear_operator import LinearOperator

# An untagged explicit matrix is refused as non-symmetric above this many eps of relative
# asymmetry (Q diag(l) Q^T formed without symmetrising is ~10 eps off).
_ASYMMETRY_EPS_FACTOR = 1000.0

__all__ = [
    "check_hooks",
    "check_maxiter",
    "check_nonnegative",
    "check_positive_int",
    "check_real_pair",
    "check_tolerances",
    "prepare_system",
    "require_not_nonsymmetric",
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
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            message = f"{name} must be a real number, got {value!r}"
            raise TypeError(message)
        if not math.isfinite(value) or value < 0:
            message = f"{name} must be finite and >= 0, got {value!r}"
            raise ValueError(message)


def check_nonnegative(value: Any, name: str) -> float:
    """Return ``value`` as a float after checking it is a finite real number >= 0.

    Raises
    ------
    TypeError
        If ``value`` is not a real number.
    ValueError
        If it is negative, NaN or infinite.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        message = f"{name} must be a real number >= 0, got {value!r}"
        raise TypeError(message)
    if not math.isfinite(value) or value < 0:
        message = f"{name} must be finite and >= 0, got {value!r}"
        raise ValueError(message)
    return float(value)


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


def check_hooks(**hooks: Any) -> None:
    """Raise ``TypeError`` unless each hook (``callback=``, ``progress=``) is callable or None."""
    for name, hook in hooks.items():
        if hook is not None and not callable(hook):
            message = f"{name} must be callable or None, got {hook!r}"
            raise TypeError(message)


def check_maxiter(maxiter: Any) -> None:
    """Raise unless ``maxiter`` is ``None`` or an integer >= 1."""
    check_positive_int(maxiter, "maxiter", allow_none=True)


def prepare_system(A: Any, b: Any, *, square: bool = True) -> tuple[LinearOperator, Any]:
    """Return ``(operator, b)`` after checking that they fit together.

    ``A`` is converted with :func:`aslinearoperator`; ``b`` must be a vector ``(n,)`` or a block
    ``(n, k)`` of the operator's library and device, of a floating dtype, and is cast to the
    operator's dtype when that loses nothing.

    Raises
    ------
    TypeError
        For mixed array libraries, a non-floating ``b``, or a ``b`` more precise than the
        operator.
    ValueError
        For a non-square operator (when ``square``), a shape mismatch or another device.
    """
    operator = aslinearoperator(A)
    if square and not operator.is_square:
        message = f"this solver needs a square operator, got shape {operator.shape}"
        raise ValueError(message)
    _require_single_precision_or_wider(operator)
    xp = array_namespace(b)
    if xp is not operator.xp:
        message = (
            f"Mismatched array namespaces: the operator works on {backend_name(operator.xp)} "
            f"arrays and b is a {backend_name(xp)} array; convert b to the operator's library"
        )
        raise TypeError(message)
    if not same_device(device(b), operator.device):
        message = f"b is on device {device(b)} but the operator on {operator.device}; move b there"
        raise ValueError(message)
    check_floating_dtype(xp, b.dtype, "b")
    n = operator.shape[1]
    if b.ndim not in (1, 2) or b.shape[0] != n:
        message = (
            f"b must have shape ({n},) or ({n}, k) for an operator of shape {operator.shape}, "
            f"got {tuple(b.shape)}"
        )
        raise ValueError(message)
    if b.dtype == operator.dtype:
        return operator, b
    if xp.result_type(b.dtype, operator.dtype) != operator.dtype:
        message = (
            f"b has dtype {dtype_name(b.dtype)} but the operator computes in "
            f"{dtype_name(operator.dtype)}; cast b to {dtype_name(operator.dtype)} or build the "
            f"operator in {dtype_name(b.dtype)}"
        )
        raise TypeError(message)
    return operator, xp.astype(b, operator.dtype)


# float16 and bfloat16 (eps 1e-3, 8e-3): no tolerance below their rounding is reachable, and the
# tridiagonal and dense eigensolvers have no kernels for them.
_LEAST_PRECISION_EPS = 2.0**-20


def _require_single_precision_or_wider(operator: LinearOperator) -> None:
    eps = epsilon(operator.xp, operator.dtype)
    if eps > _LEAST_PRECISION_EPS:
        message = (
            f"the solvers need float32 or wider, but the operator computes in "
            f"{dtype_name(operator.dtype)} (eps {eps:.1e}); build it in float32 (for a "
            "model, model.float() and float32 data; for a matrix, A.astype(float32)) and "
            "cast the result back if needed"
        )
        raise TypeError(message)


def require_not_nonsymmetric(operator: LinearOperator, method: str) -> None:
    """Raise ``ValueError`` if ``operator`` is tagged non-symmetric (``symmetric=False``).

    An untagged explicit matrix (dense, SciPy or CuPy sparse) is checked in one pass over its
    entries: ``max|A - A^H|`` above ``1000 eps max|A|`` is refused. Untagged matrix-free
    operators are probed once by the solvers' common entry (``_symmetry_probe``).
    """
    if operator.symmetric is False:
        message = (
            f"{method} needs a symmetric operator, but this one is tagged symmetric=False; "
            "for a non-symmetric A use A.H @ A or a general solver"
        )
        raise ValueError(message)
    from ._matrix_operator import MatrixOperator

    if operator.symmetric is None and isinstance(operator, MatrixOperator):
        asymmetry = operator.relative_asymmetry()
        limit = _ASYMMETRY_EPS_FACTOR * epsilon(operator.xp, operator.dtype)
        if asymmetry is not None and asymmetry > limit:
            kind = "Hermitian" if is_complex_dtype(operator.xp, operator.dtype) else "symmetric"
            message = (
                f"{method} needs a {kind} matrix, but max|A - A^H| / max|A| = {asymmetry:.3g} "
                f"(above {limit:.1e} for {dtype_name(operator.dtype)}); symmetrise it, e.g. "
                "(A + A.conj().T) / 2, or tag it with hvpseries.aslinearoperator(A, "
                "symmetric=True) to skip this check if the asymmetry is rounding"
            )
            raise ValueError(message)
