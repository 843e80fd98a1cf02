"""The vector space of an operator: the inner products and norms every solver uses.

Every solver in hvpseries computes the inner products and norms of n-vectors through the
:class:`VectorSpace` of its operator (``A.vector_space``) instead of calling ``xp.vecdot`` or
``xp.linalg.vector_norm`` itself. The default space is the local Euclidean one; an operator
whose vectors are split over several processes (:class:`hvpseries.DistributedOperator`)
supplies a space whose reductions are all-reduced, and the solvers then run unchanged.
"""

from __future__ import annotations

import operator
from types import ModuleType
from typing import Any

import numpy as np

from ._array_api import is_complex_dtype

__all__ = ["VectorSpace"]


class VectorSpace:
    """The Euclidean inner product on the vectors of an operator, computed locally.

    This is the hook through which every solver of hvpseries reduces n-vectors to numbers:
    CG, MINRES, Lanczos (and its reorthogonalisation), the series and the spectral tools call
    :meth:`inner`, :meth:`norm`, :meth:`gram` and :meth:`all_finite` of ``A.vector_space``
    and nothing else. The
    default implementation works on the arrays as they are; subclass it to change where or how
    the reductions happen (for example row-sharded vectors whose partial sums are all-reduced,
    as :class:`hvpseries.DistributedOperator` does).

    Parameters
    ----------
    xp : module
        The array API namespace of the vectors (``operator.xp``).

    Notes
    -----
    Each method is one reduction: a subclass that communicates does exactly one collective per
    call, whatever the number of columns, so solvers that batch the columns of a block (or the
    coefficients of a reorthogonalisation) pay one communication per batch.

    Two spaces are equal when they combine the same vectors: operators can be added or
    multiplied only if their spaces are equal. The default space is equal to every other
    default space on the same array library; a subclass that changes the inner product must
    refine ``__eq__`` (and ``__hash__``) so that it is not mistaken for the local one.

    Examples
    --------
    >>> import numpy as np
    >>> import hvpseries as hs
    >>> A = hs.aslinearoperator(np.diag([1.0, 2.0]), symmetric=True)
    >>> space = A.vector_space
    >>> x = np.array([[1.0, 0.0], [2.0, 3.0]])
    >>> space.inner(x, x), space.norm(np.array([3.0, 4.0]))
    (array([5., 9.]), np.float64(5.0))
    >>> space.gram(x, np.array([1.0, 1.0]))
    array([3., 3.])
    >>> space.all_finite(np.array([1.0, np.nan]))
    False
    """

    def __init__(self, xp: ModuleType) -> None:
        self._xp = xp

    @property
    def xp(self) -> ModuleType:
        """The array API namespace of the vectors."""
        return self._xp

    def inner(self, x: Any, y: Any) -> Any:
        """Return the column-wise inner products ``x[:, j]^H y[:, j]``.

        Parameters
        ----------
        x, y : array, shape (n,) or (n, k)
            Two vectors, or two blocks of ``k`` columns, of one shape.

        Returns
        -------
        array
            0-d for vectors, shape ``(k,)`` for blocks (complex for complex input).
        """
        xp = self._xp
        if is_complex_dtype(xp, x.dtype):
            x = xp.conj(x)
        # One dtype (what solvers pass): the @ operator; xp.matmul's dtype promotion, needed
        # only for mixed dtypes, doubles the cost of a product on torch.
        matmul = operator.matmul if x.dtype == y.dtype else xp.matmul
        if x.ndim == 1:
            # a 1-D matmul is one BLAS dot (vecdot broadcasts: 20x slower on torch's CPU)
            return matmul(x, y)
        if x.shape[1] == 1:
            # one column: a (1, n) @ (n, 1) product is a single BLAS dot, without temporaries
            return xp.reshape(matmul(xp.matrix_transpose(x), y), (1,))
        return xp.sum(x * y, axis=0)

    def norm(self, x: Any) -> Any:
        """Return the Euclidean norm of a vector, or of each column of a block.

        Parameters
        ----------
        x : array, shape (n,) or (n, k)

        Returns
        -------
        array
            Real, 0-d for a vector, shape ``(k,)`` for a block.
        """
        xp = self._xp
        if x.ndim == 1:
            # sqrt of one BLAS dot: NumPy's vector_norm(x, axis=0) squares into a temporary
            # first (13x slower at n = 2e5). Neither scales against overflow.
            squares = VectorSpace.inner(self, x, x)  # the local one, even in subclasses
            return xp.sqrt(xp.real(squares) if is_complex_dtype(xp, x.dtype) else squares)
        return xp.linalg.vector_norm(x, axis=0)

    def gram(self, X: Any, Y: Any) -> Any:
        """Return all inner products ``X^H Y`` between the columns of ``X`` and ``Y``.

        Parameters
        ----------
        X : array, shape (n, m)
            A block of ``m`` vectors (for example a stored Krylov basis).
        Y : array, shape (n,) or (n, k)
            A vector or a block.

        Returns
        -------
        array
            Shape ``(m,)`` for a vector ``Y``, ``(m, k)`` for a block.
        """
        xp = self._xp
        if is_complex_dtype(xp, X.dtype):
            X = xp.conj(X)
        # as in inner: the @ operator for one dtype, xp.matmul's promotion only where needed
        matmul = operator.matmul if X.dtype == Y.dtype else xp.matmul
        return matmul(xp.matrix_transpose(X), Y)

    def all_finite(self, x: Any) -> bool:
        """Return whether every entry of ``x`` is finite, on every process holding a part.

        Solvers test their input with it before any matvec, so that all processes of a
        sharded vector take the same branch.
        """
        xp = self._xp
        # In IEEE arithmetic an Inf or NaN entry makes the sum Inf or NaN, so a finite sum
        # proves every entry finite: one reduction instead of a boolean array (a pass and
        # an allocation, ~15x slower on torch's CPU). Only a sum that overflowed (huge finite
        # entries) or a non-finite one needs the entry-wise test.
        with np.errstate(over="ignore", invalid="ignore"):  # NumPy-based backends warn
            total = xp.sum(x)
        if bool(xp.isfinite(total)):
            return True
        return bool(xp.all(xp.isfinite(x)))

    def global_length(self, length: int) -> int:
        """Return the length of the whole vector of which the local arrays hold ``length`` rows.

        The local space holds whole vectors, so this is ``length`` itself.
        """
        return length

    def shard(self, x: Any) -> Any:
        """Return the rows of a whole vector ``x`` that this process holds (all of them here).

        Solvers use it to build the same random start vector on every process.
        """
        return x

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.xp is self._xp  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), id(self._xp)))

    def __repr__(self) -> str:
        from ._array_api import backend_name

        return f"{type(self).__name__}(backend={backend_name(self._xp)})"
