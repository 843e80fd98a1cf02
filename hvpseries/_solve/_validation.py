"""Checks of a linear system shared by the solvers: operator, right-hand side, symmetry."""

from __future__ import annotations

from typing import Any

from .._core._array_api import (
    array_namespace,
    backend_name,
    cast_without_loss,
    check_floating_dtype,
    device,
    dtype_name,
    epsilon,
    is_complex_dtype,
    same_device,
)
from .._operators._base import LinearOperator
from .._operators._convert import aslinearoperator

# An untagged explicit matrix is refused as non-symmetric above this many eps of relative
# asymmetry (Q diag(l) Q^T formed without symmetrising is ~10 eps off).
_ASYMMETRY_EPS_FACTOR = 1000.0

__all__ = [
    "prepare_system",
    "require_not_nonsymmetric",
]


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
    return operator, cast_without_loss(xp, b, operator.dtype, "b")


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
    from .._operators._explicit import MatrixOperator

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
