"""The abstract :class:`LinearOperator`: shape, backend, structure tags, checked application."""

from __future__ import annotations

import cmath
import copy
import numbers
from types import ModuleType
from typing import Any

from .._core._array_api import (
    array_namespace,
    backend_name,
    cast_without_loss,
    check_floating_dtype,
    device,
    dtype_name,
    is_array,
    is_complex_dtype,
    is_numpy,
    same_device,
)
from .._core._vector_space import VectorSpace

__all__ = ["LinearOperator"]

# The one import cycle in the package, as in SciPy's sparse.linalg: the operator methods
# ``@``, ``+``, ``*``, ``**``, ``.H`` and ``.T`` build the composite operators of ``_algebra``,
# which subclass ``LinearOperator``; ``_algebra`` is imported inside those methods.


class LinearOperator:
    """A matrix known only through its action on vectors, on any array backend.

    Subclasses implement ``_matmat(X)`` (apply to an ``(n, k)`` block) and/or ``_matvec(x)``, and,
    when the operator is not symmetric, ``_rmatmat``/``_rmatvec`` for the adjoint. The public
    methods check the input (array library, device, dtype, shape) once and then call them.

    Parameters
    ----------
    shape : tuple of int
        ``(m, n)``, the shape of the matrix.
    dtype : dtype
        Floating dtype of the operator in its array library (``numpy.float64``,
        ``torch.float32``, ...).
    xp : module
        The array API namespace of the vectors the operator acts on.
    device : object
        The device of those vectors (``"cpu"``, ``torch.device("cuda:0")``, ...).
    symmetric : bool or None
        ``True`` if the operator is self-adjoint (symmetric when real, Hermitian when complex),
        ``False`` if it is known not to be, ``None`` (default) if unknown. Never guessed.
    psd : bool or None
        ``True`` if the operator is symmetric positive semi-definite, ``False`` if known not to
        be, ``None`` (default) if unknown. ``psd=True`` implies ``symmetric=True``.
    vector_space : VectorSpace, optional
        The inner product of the vectors the operator acts on, used by every solver for its
        inner products and norms (see :class:`VectorSpace`). Defaults to the local Euclidean
        space of ``xp``; operators built by the algebra below inherit their operands' space.

    Notes
    -----
    Operator algebra returns new operators and never forms a matrix: ``A + B``, ``A - B``,
    ``-A``, ``c * A``, ``A / c``, ``A @ B``, ``A ** k``, ``A.shift(s)``, ``A.T``, ``A.H``.
    Structure tags propagate where that is mathematically certain (the sum of symmetric
    operators is symmetric; ``A @ A`` of a symmetric ``A`` is positive semi-definite).

    Examples
    --------
    >>> import numpy as np
    >>> import hvpseries as hs
    >>> A = hs.aslinearoperator(np.array([[2.0, 1.0], [1.0, 3.0]]), symmetric=True)
    >>> A
    <2x2 MatrixOperator(dtype=float64, backend=numpy, device=cpu, symmetric=True, psd=None)>
    >>> (A @ A).psd
    True
    >>> (2 * A.shift(1.0)) @ np.array([1.0, 0.0])
    array([6., 2.])
    """

    # NumPy defers ``ndarray @ operator`` to LinearOperator.__rmatmul__.
    __array_ufunc__ = None

    def __init__(
        self,
        shape: tuple[int, int],
        dtype: Any,
        *,
        xp: ModuleType,
        device: Any,
        symmetric: bool | None = None,
        psd: bool | None = None,
        vector_space: VectorSpace | None = None,
    ) -> None:
        if type(self)._matmat is LinearOperator._matmat and (
            type(self)._matvec is LinearOperator._matvec
        ):
            message = f"{type(self).__name__} must implement _matmat or _matvec"
            raise TypeError(message)
        self._shape = _checked_shape(shape)
        xp = array_namespace(xp.empty(0))  # the array-api-compat wrapper, also for a bare numpy
        check_floating_dtype(xp, dtype, "the operator")
        self._dtype = dtype
        self._xp = xp
        self._device = device
        self._symmetric, self._psd = _checked_tags(self._shape, symmetric, psd)
        if vector_space is None:
            vector_space = VectorSpace(xp)
        elif not isinstance(vector_space, VectorSpace):
            message = (
                f"vector_space must be a hvpseries.VectorSpace, got {type(vector_space).__name__}"
            )
            raise TypeError(message)
        self._vector_space = vector_space
        self._ready_type: type | None = None  # set by the first full check of an input

    # ------------------------------------------------------------------ description
    @property
    def shape(self) -> tuple[int, int]:
        """The shape ``(m, n)`` of the matrix."""
        return self._shape

    @property
    def global_shape(self) -> tuple[int, int]:
        """The shape of the whole matrix when the vectors are split over processes.

        Equal to :attr:`shape` for operators on local vectors; for a
        :class:`DistributedOperator`, :attr:`shape` is the local shape seen by the arrays and
        ``global_shape`` that of the whole operator. Size-dependent defaults of the solvers
        (``maxiter = 10 n``, ...) use it, so that every process takes the same decisions.
        """
        space = self._vector_space
        return space.global_length(self._shape[0]), space.global_length(self._shape[1])

    @property
    def vector_space(self) -> VectorSpace:
        """The :class:`VectorSpace` whose inner products and norms the solvers use."""
        return self._vector_space

    @property
    def ndim(self) -> int:
        """Always 2."""
        return 2

    @property
    def dtype(self) -> Any:
        """The floating dtype of the operator in its array library."""
        return self._dtype

    @property
    def xp(self) -> ModuleType:
        """The array API namespace of the vectors the operator acts on."""
        return self._xp

    @property
    def device(self) -> Any:
        """The device of the vectors the operator acts on."""
        return self._device

    @property
    def symmetric(self) -> bool | None:
        """``True``/``False`` if known (symmetric means self-adjoint), ``None`` if unknown."""
        return self._symmetric

    @property
    def psd(self) -> bool | None:
        """``True``/``False`` if known positive semi-definite or not, ``None`` if unknown."""
        return self._psd

    @property
    def is_square(self) -> bool:
        """Whether ``m == n``."""
        return self._shape[0] == self._shape[1]

    def with_structure(
        self, *, symmetric: bool | None = None, psd: bool | None = None
    ) -> LinearOperator:
        """Return a copy of this operator carrying the given structure tags.

        Use it to declare structure the constructor could not know, e.g. that a
        :class:`FunctionOperator` is symmetric. The tags are trusted, not checked.

        Examples
        --------
        >>> import numpy as np
        >>> import hvpseries as hs
        >>> A = hs.aslinearoperator(np.eye(3)).with_structure(psd=True)
        >>> A.symmetric, A.psd
        (True, True)
        """
        tagged = copy.copy(self)
        tagged._symmetric, tagged._psd = _checked_tags(self._shape, symmetric, psd)
        return tagged

    def __repr__(self) -> str:
        m, n = self._shape
        return (
            f"<{m}x{n} {type(self).__name__.lstrip('_')}(dtype={dtype_name(self._dtype)}, "
            f"backend={backend_name(self._xp)}, device={self._device}, "
            f"symmetric={self._symmetric}, psd={self._psd})>"
        )

    # ------------------------------------------------------------------ application
    def matvec(self, x: Any) -> Any:
        """Return ``A @ x`` for a vector ``x`` of shape ``(n,)`` (or ``(n, 1)``).

        Raises
        ------
        TypeError
            If ``x`` comes from another array library than the operator or has a dtype that
            cannot be converted to the operator's without loss.
        ValueError
            If ``x`` has the wrong shape or lives on another device.
        """
        if self._is_ready(x, 1):
            return self._matvec(x)
        x = self._checked_input(x, self._shape[1], "matvec")
        if x.ndim == 2:
            return self._matmat(x)
        return self._matvec(x)

    def matmat(self, X: Any) -> Any:
        """Return ``A @ X`` for a block ``X`` of shape ``(n, k)``: all columns in one call."""
        if self._is_ready(X, 2):
            return self._matmat(X)
        X = self._checked_input(X, self._shape[1], "matmat", block=True)
        return self._matmat(X)

    def _is_ready(self, x: Any, ndim: int) -> bool:
        """Whether ``x`` needs no check or conversion: the fast path of repeated products.

        Checked once, trusted after: true only for an array of the exact type that a full
        check of this operator accepted before, with the operator's dtype, input length and
        device. The solvers' vectors are such arrays (``b`` was checked when the problem was
        posed), so each of their products costs a few attribute reads instead of the full
        check; anything else takes the full check, which raises on bad input.
        """
        return (
            type(x) is self._ready_type
            and x.ndim == ndim
            and x.shape[0] == self._shape[1]
            and x.dtype == self._dtype
            and getattr(x, "device", None) == self._device
        )

    def rmatvec(self, x: Any) -> Any:
        """Return the adjoint applied to ``x``: ``A^H @ x`` for ``x`` of shape ``(m,)``."""
        x = self._checked_input(x, self._shape[0], "rmatvec")
        if x.ndim == 2:
            return self._rmatmat(x)
        return self._rmatvec(x)

    def rmatmat(self, X: Any) -> Any:
        """Return ``A^H @ X`` for a block ``X`` of shape ``(m, k)``."""
        X = self._checked_input(X, self._shape[0], "rmatmat", block=True)
        return self._rmatmat(X)

    def todense(self) -> Any:
        """Materialise the operator as a dense array (for tests and small problems)."""
        xp = self._xp
        eye = xp.eye(self._shape[1], dtype=self._dtype, device=self._device)
        return self._matmat(eye)

    def to_scipy(self) -> Any:
        """Return a :class:`scipy.sparse.linalg.LinearOperator` applying this operator.

        Only for operators on NumPy arrays: SciPy works on host arrays, and moving vectors
        between devices on every product would be a hidden cost.

        Examples
        --------
        >>> import numpy as np
        >>> import hvpseries as hs
        >>> import scipy.sparse.linalg as sla
        >>> A = hs.DiagonalOperator(np.array([1.0, 2.0, 4.0]))
        >>> sla.cg(A.to_scipy(), np.ones(3))[0]
        array([1.  , 0.5 , 0.25])
        """
        if not is_numpy(self._xp):
            message = (
                f"to_scipy() needs an operator on NumPy arrays, this one works on "
                f"{backend_name(self._xp)} arrays; use hvpseries solvers directly, which run on "
                "every backend"
            )
            raise TypeError(message)
        import numpy as np
        import scipy.sparse.linalg as sla

        return sla.LinearOperator(
            self._shape,
            matvec=lambda x: self._matvec(np.ravel(x)),
            matmat=self._matmat,
            rmatvec=lambda x: self._rmatvec(np.ravel(x)),
            rmatmat=self._rmatmat,
            dtype=np.dtype(self._dtype),
        )

    # ------------------------------------------------------------------ for subclasses
    def _matvec(self, x: Any) -> Any:
        return self._matmat(x[:, None])[:, 0]

    def _matmat(self, X: Any) -> Any:
        return self._by_columns(self._matvec, X, self._shape[0])

    def _rmatvec(self, x: Any) -> Any:
        if self._symmetric:
            return self._matvec(x)
        return self._rmatmat(x[:, None])[:, 0]

    def _rmatmat(self, X: Any) -> Any:
        if self._symmetric:
            return self._matmat(X)
        cls = type(self)
        if cls._rmatvec is not LinearOperator._rmatvec and cls._rmatmat is LinearOperator._rmatmat:
            return self._by_columns(self._rmatvec, X, self._shape[1])  # a subclass's _rmatvec
        message = (
            f"{type(self).__name__} cannot apply its adjoint: pass rmatvec= to FunctionOperator, "
            "or declare the operator symmetric with with_structure(symmetric=True)"
        )
        raise TypeError(message)

    def _by_columns(self, apply: Any, X: Any, rows: int) -> Any:
        """Apply a vector function to each column of ``X`` and stack the results."""
        if X.shape[1] == 0:
            return self._xp.zeros((rows, 0), dtype=self._dtype, device=self._device)
        return self._xp.stack([apply(X[:, j]) for j in range(X.shape[1])], axis=1)

    def _checked_input(self, x: Any, length: int, method: str, *, block: bool = False) -> Any:
        if not is_array(x):
            message = (
                f"{method} expects an array of the operator's library "
                f"({backend_name(self._xp)}), got {type(x).__name__}"
            )
            raise TypeError(message)
        x_xp = array_namespace(x)
        if x_xp is not self._xp:
            message = (
                f"Mismatched array namespaces: the operator works on {backend_name(self._xp)} "
                f"arrays, {method} got a {backend_name(x_xp)} array; convert the input or "
                "build the operator from arrays of the same library"
            )
            raise TypeError(message)
        x_device = device(x)
        if not same_device(x_device, self._device):
            message = (
                f"{method} got an array on device {x_device}, but the operator lives on "
                f"{self._device}; move the input to that device first"
            )
            raise ValueError(message)
        expected = f"({length}, k)" if block else f"({length},) or ({length}, 1)"
        if (
            x.ndim not in (1, 2)
            or (block and x.ndim != 2)
            or x.shape[0] != length
            or (not block and x.ndim == 2 and x.shape[1] != 1)
        ):
            message = (
                f"{method} of a {self._shape[0]}x{self._shape[1]} operator expects shape "
                f"{expected}, got {tuple(x.shape)}"
            )
            raise ValueError(message)
        if x.dtype != self._dtype:
            return self._converted_dtype(x, method)
        self._ready_type = type(x)
        return x

    def _converted_dtype(self, x: Any, method: str) -> Any:
        what = f"the input to {method}"
        check_floating_dtype(self._xp, x.dtype, what)
        return cast_without_loss(self._xp, x, self._dtype, what)

    # ------------------------------------------------------------------ algebra
    def __matmul__(self, other: Any) -> Any:
        if isinstance(other, LinearOperator):
            from ._algebra import ProductOperator

            return ProductOperator(self, other)
        if is_array(other):
            if getattr(other, "ndim", None) == 2 and other.shape[1] != 1:
                return self.matmat(other)
            return self.matvec(other)
        return NotImplemented

    def __rmatmul__(self, other: Any) -> Any:
        if not is_array(other):
            return NotImplemented
        self._checked_input(
            other.T if other.ndim == 2 else other, self._shape[0], "x @ A", block=other.ndim == 2
        )
        if other.ndim == 1:
            return self.transpose().matvec(other)
        if other.ndim == 2:
            xp = self._xp
            return xp.matrix_transpose(self.transpose().matmat(xp.matrix_transpose(other)))
        message = f"x @ A needs a 1-D or 2-D array, got {other.ndim}-D"
        raise ValueError(message)

    def __add__(self, other: Any) -> LinearOperator:
        if not isinstance(other, LinearOperator):
            return NotImplemented
        from ._algebra import SumOperator

        return SumOperator(self, other)

    def __sub__(self, other: Any) -> LinearOperator:
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return self + (-other)

    def __neg__(self) -> LinearOperator:
        return self * -1

    def __pos__(self) -> LinearOperator:
        return self

    def __mul__(self, scalar: Any) -> LinearOperator:
        if isinstance(scalar, LinearOperator):
            message = "use A @ B for the product of two operators; * is scaling by a number"
            raise TypeError(message)
        if not _is_scalar(scalar):
            return NotImplemented
        from ._algebra import ScaledOperator

        return ScaledOperator(self, scalar)

    __rmul__ = __mul__

    def __truediv__(self, scalar: Any) -> LinearOperator:
        if not _is_scalar(scalar):
            return NotImplemented
        if scalar == 0:
            message = "cannot divide an operator by zero"
            raise ValueError(message)
        return self * (1 / scalar)

    def __pow__(self, power: Any) -> LinearOperator:
        if isinstance(power, bool) or not isinstance(power, numbers.Integral):
            message = f"A ** k needs an integer k >= 0, got {power!r}"
            raise TypeError(message)
        if power < 0:
            message = (
                f"A ** k needs k >= 0, got {power}; for inverses use a solver "
                "(hvpseries.solve, hvpseries.abs_inv)"
            )
            raise ValueError(message)
        from ._algebra import PowerOperator

        return PowerOperator(self, int(power))

    def shift(self, shift: Any) -> LinearOperator:
        """Return ``A + shift * I`` (square operators only).

        Examples
        --------
        >>> import numpy as np
        >>> import hvpseries as hs
        >>> hs.DiagonalOperator(np.array([1.0, -2.0])).shift(3.0).todense()
        array([[4., 0.],
               [0., 1.]])
        """
        if not _is_scalar(shift):
            message = f"shift must be a number, got {type(shift).__name__}"
            raise TypeError(message)
        if not cmath.isfinite(complex(shift)):
            message = f"shift must be finite, got {shift!r}"
            raise ValueError(message)
        from ._algebra import ShiftedOperator

        return ShiftedOperator(self, shift)

    def adjoint(self) -> LinearOperator:
        """Return the adjoint (conjugate transpose) ``A^H`` as an operator."""
        if self._symmetric:
            return self
        from ._algebra import AdjointOperator

        return AdjointOperator(self)

    def transpose(self) -> LinearOperator:
        """Return the transpose ``A^T`` as an operator."""
        if not is_complex_dtype(self._xp, self._dtype):
            return self.adjoint()
        from ._algebra import TransposeOperator

        return TransposeOperator(self)

    @property
    def H(self) -> LinearOperator:
        """The adjoint ``A^H`` (see :meth:`adjoint`)."""
        return self.adjoint()

    @property
    def T(self) -> LinearOperator:
        """The transpose ``A^T`` (see :meth:`transpose`)."""
        return self.transpose()


def _is_scalar(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def _checked_shape(shape: Any) -> tuple[int, int]:
    try:
        m, n = shape
    except (TypeError, ValueError):
        message = f"shape must be a pair of non-negative integers (m, n), got {shape!r}"
        raise ValueError(message) from None
    integral = all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in (m, n))
    if not integral or m < 0 or n < 0:
        message = f"shape must be a pair of non-negative integers (m, n), got {shape!r}"
        raise ValueError(message)
    return int(m), int(n)


def _checked_tags(
    shape: tuple[int, int], symmetric: bool | None, psd: bool | None
) -> tuple[bool | None, bool | None]:
    for name, tag in (("symmetric", symmetric), ("psd", psd)):
        if tag is not None and not isinstance(tag, bool):
            message = f"{name} must be True, False or None (unknown), got {tag!r}"
            raise TypeError(message)
    if psd and symmetric is False:
        message = "psd=True implies symmetric=True, but symmetric=False was given"
        raise ValueError(message)
    if (symmetric or psd) and shape[0] != shape[1]:
        message = f"a {shape[0]}x{shape[1]} operator cannot be symmetric or psd (not square)"
        raise ValueError(message)
    if psd:
        symmetric = True
    return symmetric, psd
