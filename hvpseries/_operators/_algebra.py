"""Operators built from other operators by the algebra of :class:`LinearOperator`.

These classes are private: users obtain them through ``+``, ``*``, ``@``, ``**``, ``shift``,
``.H`` and ``.T``. They call their children's private ``_matmat``/``_matvec`` so that input
checks happen once, at the outermost operator.
"""

from __future__ import annotations

import abc
import numbers
from typing import Any

from .._core._array_api import backend_name, dtype_name, is_complex_dtype, real_dtype, same_device
from ._base import LinearOperator

__all__ = [
    "AdjointOperator",
    "CompositeOperator",
    "PowerOperator",
    "ProductOperator",
    "ScaledOperator",
    "ShiftedOperator",
    "SumOperator",
    "TransposeOperator",
]

# The application method of the adjoint that stands for each application method.
_ADJOINT_METHOD = {
    "_matvec": "_rmatvec",
    "_matmat": "_rmatmat",
    "_rmatvec": "_matvec",
    "_rmatmat": "_matmat",
}


def _is_adjoint(method: str) -> bool:
    return method in ("_rmatvec", "_rmatmat")


def _check_compatible(left: LinearOperator, right: LinearOperator, symbol: str) -> None:
    """Raise unless ``A symbol B`` can be formed: one library, device, space and precision."""
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


def _python_number(scalar: numbers.Number) -> float | complex:
    return float(scalar) if isinstance(scalar, numbers.Real) else complex(scalar)


class CompositeOperator(LinearOperator, metaclass=abc.ABCMeta):
    """An operator built from others: the library, device and vector space of ``base``.

    Subclasses implement ``_apply(method, x)``, which serves all four application methods:
    ``method`` is the name of the one called (``"_matvec"``, ``"_matmat"``, ``"_rmatvec"`` or
    ``"_rmatmat"``), to be called in turn on the children.
    """

    def __init__(
        self,
        base: LinearOperator,
        shape: tuple[int, int],
        dtype: Any,
        *,
        symmetric: bool | None = None,
        psd: bool | None = None,
    ) -> None:
        super().__init__(
            shape,
            dtype,
            xp=base.xp,
            device=base.device,
            vector_space=base.vector_space,
            symmetric=symmetric,
            psd=psd,
        )

    @abc.abstractmethod
    def _apply(self, method: str, x: Any) -> Any:
        """Apply the composite by ``method`` (``"_matvec"``, ``"_rmatmat"``, ...)."""

    def _matvec(self, x: Any) -> Any:
        return self._apply("_matvec", x)

    def _matmat(self, X: Any) -> Any:
        return self._apply("_matmat", X)

    def _rmatvec(self, x: Any) -> Any:
        return self._apply("_rmatvec", x)

    def _rmatmat(self, X: Any) -> Any:
        return self._apply("_rmatmat", X)


class SumOperator(CompositeOperator):
    """``A + B``."""

    def __init__(self, left: LinearOperator, right: LinearOperator) -> None:
        _check_compatible(left, right, "+")
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
            left,
            left.shape,
            left.xp.result_type(left.dtype, right.dtype),
            symmetric=symmetric,
            psd=True if (left.psd and right.psd) else None,
        )
        self.operands = (left, right)

    def _apply(self, method: str, x: Any) -> Any:
        left, right = self.operands
        return _call(left, method, x) + _call(right, method, x)


class _NumberOperator(CompositeOperator):
    """``c A`` or ``A + c I``: ``A`` with a number ``c``, conjugated in the adjoint.

    Complex if ``c`` is; the tags of ``A`` are kept for a real ``c`` (psd only if ``c >= 0``).
    """

    def __init__(self, operator: LinearOperator, number: numbers.Number) -> None:
        xp = operator.xp
        real = isinstance(number, numbers.Real)
        if real or is_complex_dtype(xp, operator.dtype):
            dtype = operator.dtype
        else:
            dtype = xp.complex64 if operator.dtype == xp.float32 else xp.complex128
        super().__init__(
            operator,
            operator.shape,
            dtype,
            symmetric=operator.symmetric if real else None,
            psd=True if (operator.psd and real and number >= 0) else None,
        )
        self.operator = operator
        self.number = _python_number(number)

    def _number_in(self, method: str) -> float | complex:
        """Return the number as ``method`` applies it: conjugated for the adjoint."""
        return self.number.conjugate() if _is_adjoint(method) else self.number


class ScaledOperator(_NumberOperator):
    """``c * A`` for a number ``c``."""

    def _apply(self, method: str, x: Any) -> Any:
        return _call(self.operator, method, x) * self._number_in(method)


class ShiftedOperator(_NumberOperator):
    """``A + s I`` for a square ``A`` and a number ``s``."""

    def __init__(self, operator: LinearOperator, shift: numbers.Number) -> None:
        if not operator.is_square:
            message = f"A.shift(s) needs a square operator, got shape {operator.shape}"
            raise ValueError(message)
        super().__init__(operator, shift)

    def _apply(self, method: str, x: Any) -> Any:
        return _call(self.operator, method, x) + x * self._number_in(method)


class ProductOperator(CompositeOperator):
    """``A @ B``."""

    def __init__(self, left: LinearOperator, right: LinearOperator) -> None:
        _check_compatible(left, right, "@")
        if left.shape[1] != right.shape[0]:
            message = (
                f"cannot multiply operators of shapes {left.shape} and {right.shape}: "
                f"inner dimensions {left.shape[1]} and {right.shape[0]} differ"
            )
            raise ValueError(message)
        gram = _is_adjoint_pair(left, right)
        super().__init__(
            left,
            (left.shape[0], right.shape[1]),
            left.xp.result_type(left.dtype, right.dtype),
            symmetric=True if gram else None,
            psd=True if gram else None,
        )
        self.operands = (left, right)

    def _apply(self, method: str, x: Any) -> Any:
        left, right = self.operands
        first, last = (left, right) if _is_adjoint(method) else (right, left)  # (A B)^H = B^H A^H
        return _call(last, method, _call(first, method, x))


def _is_adjoint_pair(left: LinearOperator, right: LinearOperator) -> bool:
    """Whether ``left @ right`` is a Gram product ``B^H B``, ``B B^H`` or ``A A`` (A = A^H)."""
    if left is right:
        return bool(left.symmetric)
    return (isinstance(left, AdjointOperator) and left.operator is right) or (
        isinstance(right, AdjointOperator) and right.operator is left
    )


class PowerOperator(CompositeOperator):
    """``A ** k`` for a square ``A`` and an integer ``k >= 0``."""

    def __init__(self, operator: LinearOperator, power: int) -> None:
        if not operator.is_square:
            message = f"A ** k needs a square operator, got shape {operator.shape}"
            raise ValueError(message)
        even = power % 2 == 0
        super().__init__(
            operator,
            operator.shape,
            operator.dtype,
            symmetric=True if (power == 0 or operator.symmetric) else None,
            psd=True if (power == 0 or operator.psd or (even and operator.symmetric)) else None,
        )
        self.operator = operator
        self.power = power

    def _apply(self, method: str, x: Any) -> Any:
        for _ in range(self.power):
            x = _call(self.operator, method, x)
        return x


class AdjointOperator(CompositeOperator):
    """``A^H``: applies the adjoint of ``A``."""

    def __init__(self, operator: LinearOperator) -> None:
        m, n = operator.shape
        tags = {"symmetric": operator.symmetric, "psd": operator.psd}
        super().__init__(operator, (n, m), operator.dtype, **tags)
        self.operator = operator

    def adjoint(self) -> LinearOperator:
        """Return the operator this is the adjoint of."""
        return self.operator

    def _apply(self, method: str, x: Any) -> Any:
        return _call(self.operator, _ADJOINT_METHOD[method], x)


class TransposeOperator(CompositeOperator):
    """``A^T`` of a complex operator: ``A^T x = conj(A^H conj(x))``."""

    def __init__(self, operator: LinearOperator) -> None:
        m, n = operator.shape
        super().__init__(operator, (n, m), operator.dtype)
        self.operator = operator

    def transpose(self) -> LinearOperator:
        """Return the operator this is the transpose of."""
        return self.operator

    def _apply(self, method: str, x: Any) -> Any:
        xp = self.xp
        return xp.conj(_call(self.operator, _ADJOINT_METHOD[method], xp.conj(x)))
