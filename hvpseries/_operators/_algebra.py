"""Operators built from other operators by the algebra of :class:`LinearOperator`.

These classes are private: users obtain them through ``+``, ``*``, ``@``, ``**``, ``shift``,
``.H`` and ``.T``. They call their children's private ``_matmat``/``_matvec`` so that input
checks happen once, at the outermost operator.
"""

from __future__ import annotations

import numbers
from typing import Any

from .._core._array_api import backend_name, dtype_name, is_complex_dtype, real_dtype, same_device
from ._base import LinearOperator

__all__ = [
    "AdjointOperator",
    "PowerOperator",
    "ProductOperator",
    "ScaledOperator",
    "ShiftedOperator",
    "SumOperator",
    "TransposeOperator",
]


def _check_compatible(left: LinearOperator, right: LinearOperator, symbol: str) -> None:
    if left.xp is not right.xp:
        message = (
            f"Mismatched array namespaces: cannot form A {symbol} B with A on "
            f"{backend_name(left.xp)} and B on {backend_name(right.xp)} arrays"
        )
        raise TypeError(message)
    if not same_device(left.device, right.device):
        message = f"cannot form A {symbol} B with A on device {left.device} and B on {right.device}"
        raise ValueError(message)
    if left.vector_space != right.vector_space:
        message = (
            f"cannot form A {symbol} B from operators on different vector spaces "
            f"({left.vector_space!r} and {right.vector_space!r}), e.g. row-sharded and local "
            "vectors; build both on the same space (for A + c I use A.shift(c))"
        )
        raise ValueError(message)


def _check_same_precision(left: LinearOperator, right: LinearOperator, symbol: str) -> None:
    xp = left.xp
    if real_dtype(xp, left.dtype) != real_dtype(xp, right.dtype):
        message = (
            f"cannot form A {symbol} B from a {dtype_name(left.dtype)} and a "
            f"{dtype_name(right.dtype)} operator: build both in one precision (mixing would "
            "silently compute part of the product in the lower one)"
        )
        raise TypeError(message)


def _call(child: LinearOperator, method: str, x: Any) -> Any:
    """Apply ``child``'s private ``method`` to ``x``, also a complex ``x`` for a real child.

    A real operator applied to complex input acts on the real and imaginary parts separately
    (array libraries such as PyTorch refuse mixed real/complex products).
    """
    xp = child.xp
    if (
        x.dtype != child.dtype
        and is_complex_dtype(xp, x.dtype)
        and not is_complex_dtype(xp, child.dtype)
    ):
        apply = getattr(child, method)
        real, imaginary = apply(xp.real(x)), apply(xp.imag(x))
        return xp.astype(real, x.dtype) + xp.astype(imaginary, x.dtype) * 1j
    return getattr(child, method)(x)


def _scaled_dtype(operator: LinearOperator, scalar: numbers.Number) -> Any:
    xp = operator.xp
    if isinstance(scalar, numbers.Real) or is_complex_dtype(xp, operator.dtype):
        return operator.dtype
    return xp.complex64 if operator.dtype == xp.float32 else xp.complex128


def _python_number(scalar: numbers.Number) -> float | complex:
    return float(scalar) if isinstance(scalar, numbers.Real) else complex(scalar)


def _is_nonnegative_real(scalar: numbers.Number) -> bool:
    return isinstance(scalar, numbers.Real) and scalar >= 0


class SumOperator(LinearOperator):
    """``A + B``."""

    def __init__(self, left: LinearOperator, right: LinearOperator) -> None:
        _check_compatible(left, right, "+")
        _check_same_precision(left, right, "+")
        if left.shape != right.shape:
            message = f"cannot add operators of shapes {left.shape} and {right.shape}"
            raise ValueError(message)
        if left.symmetric is None or right.symmetric is None:
            symmetric = None
        elif left.symmetric and right.symmetric:
            symmetric = True
        else:
            symmetric = None if not (left.symmetric or right.symmetric) else False
        super().__init__(
            left.shape,
            left.xp.result_type(left.dtype, right.dtype),
            xp=left.xp,
            device=left.device,
            vector_space=left.vector_space,
            symmetric=symmetric,
            psd=True if (left.psd and right.psd) else None,
        )
        self.operands = (left, right)

    def _matvec(self, x: Any) -> Any:
        left, right = self.operands
        return _call(left, "_matvec", x) + _call(right, "_matvec", x)

    def _matmat(self, X: Any) -> Any:
        left, right = self.operands
        return _call(left, "_matmat", X) + _call(right, "_matmat", X)

    def _rmatvec(self, x: Any) -> Any:
        left, right = self.operands
        return _call(left, "_rmatvec", x) + _call(right, "_rmatvec", x)

    def _rmatmat(self, X: Any) -> Any:
        left, right = self.operands
        return _call(left, "_rmatmat", X) + _call(right, "_rmatmat", X)


class ScaledOperator(LinearOperator):
    """``c * A`` for a number ``c``."""

    def __init__(self, operator: LinearOperator, scalar: numbers.Number) -> None:
        real = isinstance(scalar, numbers.Real)
        super().__init__(
            operator.shape,
            _scaled_dtype(operator, scalar),
            xp=operator.xp,
            device=operator.device,
            vector_space=operator.vector_space,
            symmetric=operator.symmetric if real else None,
            psd=True if (operator.psd and _is_nonnegative_real(scalar)) else None,
        )
        self.operator = operator
        self.scalar = _python_number(scalar)

    def _matvec(self, x: Any) -> Any:
        return _call(self.operator, "_matvec", x) * self.scalar

    def _matmat(self, X: Any) -> Any:
        return _call(self.operator, "_matmat", X) * self.scalar

    def _rmatvec(self, x: Any) -> Any:
        return _call(self.operator, "_rmatvec", x) * self.scalar.conjugate()

    def _rmatmat(self, X: Any) -> Any:
        return _call(self.operator, "_rmatmat", X) * self.scalar.conjugate()


class ShiftedOperator(LinearOperator):
    """``A + s I`` for a square ``A`` and a number ``s``."""

    def __init__(self, operator: LinearOperator, shift: numbers.Number) -> None:
        if not operator.is_square:
            message = f"A.shift(s) needs a square operator, got shape {operator.shape}"
            raise ValueError(message)
        real = isinstance(shift, numbers.Real)
        super().__init__(
            operator.shape,
            _scaled_dtype(operator, shift),
            xp=operator.xp,
            device=operator.device,
            vector_space=operator.vector_space,
            symmetric=operator.symmetric if real else None,
            psd=True if (operator.psd and _is_nonnegative_real(shift)) else None,
        )
        self.operator = operator
        self.shift_value = _python_number(shift)

    def _matvec(self, x: Any) -> Any:
        return _call(self.operator, "_matvec", x) + x * self.shift_value

    def _matmat(self, X: Any) -> Any:
        return _call(self.operator, "_matmat", X) + X * self.shift_value

    def _rmatvec(self, x: Any) -> Any:
        return _call(self.operator, "_rmatvec", x) + x * self.shift_value.conjugate()

    def _rmatmat(self, X: Any) -> Any:
        return _call(self.operator, "_rmatmat", X) + X * self.shift_value.conjugate()


class ProductOperator(LinearOperator):
    """``A @ B``."""

    def __init__(self, left: LinearOperator, right: LinearOperator) -> None:
        _check_compatible(left, right, "@")
        _check_same_precision(left, right, "@")
        if left.shape[1] != right.shape[0]:
            message = (
                f"cannot multiply operators of shapes {left.shape} and {right.shape}: "
                f"inner dimensions {left.shape[1]} and {right.shape[0]} differ"
            )
            raise ValueError(message)
        gram = _is_adjoint_pair(left, right)
        super().__init__(
            (left.shape[0], right.shape[1]),
            left.xp.result_type(left.dtype, right.dtype),
            xp=left.xp,
            device=left.device,
            vector_space=left.vector_space,
            symmetric=True if gram else None,
            psd=True if gram else None,
        )
        self.operands = (left, right)

    def _matvec(self, x: Any) -> Any:
        left, right = self.operands
        return _call(left, "_matvec", _call(right, "_matvec", x))

    def _matmat(self, X: Any) -> Any:
        left, right = self.operands
        return _call(left, "_matmat", _call(right, "_matmat", X))

    def _rmatvec(self, x: Any) -> Any:
        left, right = self.operands
        return _call(right, "_rmatvec", _call(left, "_rmatvec", x))

    def _rmatmat(self, X: Any) -> Any:
        left, right = self.operands
        return _call(right, "_rmatmat", _call(left, "_rmatmat", X))


def _is_adjoint_pair(left: LinearOperator, right: LinearOperator) -> bool:
    """Whether ``left @ right`` is a Gram product ``B^H B``, ``B B^H`` or ``A A`` (A = A^H)."""
    if left is right:
        return bool(left.symmetric)
    return (isinstance(left, AdjointOperator) and left.operator is right) or (
        isinstance(right, AdjointOperator) and right.operator is left
    )


class PowerOperator(LinearOperator):
    """``A ** k`` for a square ``A`` and an integer ``k >= 0``."""

    def __init__(self, operator: LinearOperator, power: int) -> None:
        if not operator.is_square:
            message = f"A ** k needs a square operator, got shape {operator.shape}"
            raise ValueError(message)
        even = power % 2 == 0
        super().__init__(
            operator.shape,
            operator.dtype,
            xp=operator.xp,
            device=operator.device,
            vector_space=operator.vector_space,
            symmetric=True if (power == 0 or operator.symmetric) else None,
            psd=True if (power == 0 or operator.psd or (even and operator.symmetric)) else None,
        )
        self.operator = operator
        self.power = power

    def _matvec(self, x: Any) -> Any:
        for _ in range(self.power):
            x = _call(self.operator, "_matvec", x)
        return x

    def _matmat(self, X: Any) -> Any:
        for _ in range(self.power):
            X = _call(self.operator, "_matmat", X)
        return X

    def _rmatvec(self, x: Any) -> Any:
        for _ in range(self.power):
            x = _call(self.operator, "_rmatvec", x)
        return x

    def _rmatmat(self, X: Any) -> Any:
        for _ in range(self.power):
            X = _call(self.operator, "_rmatmat", X)
        return X


class AdjointOperator(LinearOperator):
    """``A^H``: applies the adjoint of ``A``."""

    def __init__(self, operator: LinearOperator) -> None:
        m, n = operator.shape
        super().__init__(
            (n, m),
            operator.dtype,
            xp=operator.xp,
            device=operator.device,
            vector_space=operator.vector_space,
            symmetric=operator.symmetric,
            psd=operator.psd,
        )
        self.operator = operator

    def adjoint(self) -> LinearOperator:
        return self.operator

    def _matvec(self, x: Any) -> Any:
        return _call(self.operator, "_rmatvec", x)

    def _matmat(self, X: Any) -> Any:
        return _call(self.operator, "_rmatmat", X)

    def _rmatvec(self, x: Any) -> Any:
        return _call(self.operator, "_matvec", x)

    def _rmatmat(self, X: Any) -> Any:
        return _call(self.operator, "_matmat", X)


class TransposeOperator(LinearOperator):
    """``A^T`` of a complex operator: ``A^T x = conj(A^H conj(x))``."""

    def __init__(self, operator: LinearOperator) -> None:
        m, n = operator.shape
        super().__init__(
            (n, m),
            operator.dtype,
            xp=operator.xp,
            device=operator.device,
            symmetric=None,
            vector_space=operator.vector_space,
        )
        self.operator = operator

    def transpose(self) -> LinearOperator:
        return self.operator

    def _matvec(self, x: Any) -> Any:
        xp = self.xp
        return xp.conj(_call(self.operator, "_rmatvec", xp.conj(x)))

    def _matmat(self, X: Any) -> Any:
        xp = self.xp
        return xp.conj(_call(self.operator, "_rmatmat", xp.conj(X)))

    def _rmatvec(self, x: Any) -> Any:
        xp = self.xp
        return xp.conj(_call(self.operator, "_matvec", xp.conj(x)))

    def _rmatmat(self, X: Any) -> Any:
        xp = self.xp
        return xp.conj(_call(self.operator, "_matmat", xp.conj(X)))
