"""An explicit matrix as an operator: dense arrays of any backend and sparse matrices."""

from __future__ import annotations

import sys
from typing import Any

import scipy.sparse

from .._core._array_api import (
    array_namespace,
    check_floating_dtype,
    device,
    is_array,
    is_complex_dtype,
    numpy_namespace,
)
from ._base import LinearOperator

__all__ = ["MatrixOperator", "is_sparse_matrix"]


def is_sparse_matrix(obj: Any) -> bool:
    """Whether ``obj`` is a SciPy, CuPy or PyTorch sparse matrix (no optional import)."""
    return _sparse_kind(obj) is not None


def _sparse_kind(obj: Any) -> str | None:
    if scipy.sparse.issparse(obj):
        return "scipy"
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.Tensor) and obj.layout != torch.strided:
        return "torch"
    cupyx_sparse = sys.modules.get("cupyx.scipy.sparse")
    if cupyx_sparse is not None and cupyx_sparse.issparse(obj):
        return "cupyx"
    return None


class MatrixOperator(LinearOperator):
    """A dense or sparse matrix as a :class:`LinearOperator`.

    Parameters
    ----------
    matrix : array or sparse matrix
        A 2-D floating array of NumPy, PyTorch, CuPy or any array-API library, or a sparse
        matrix of :mod:`scipy.sparse`, ``cupyx.scipy.sparse`` or PyTorch (COO, CSR). The
        operator works on vectors of the same library and device. The matrix is not copied.
    symmetric, psd : bool or None
        Structure tags (see :class:`LinearOperator`); not checked against the entries.
    check_finite : bool, default True
        Check once, here, that every stored entry is finite.

    Raises
    ------
    TypeError
        If ``matrix`` is not a matrix of a supported library or has a non-floating dtype.
    ValueError
        If ``matrix`` is not 2-D or has NaN/Inf entries (with ``check_finite``).

    Notes
    -----
    A product costs exactly the library's own ``matrix @ x``; the adjoint is formed lazily on
    first use (a transposed view for dense real matrices).

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> import hvpseries as hs
    >>> A = hs.MatrixOperator(sp.diags([1.0, 2.0, 3.0]).tocsr(), symmetric=True)
    >>> A @ np.ones(3)
    array([1., 2., 3.])
    """

    def __init__(
        self,
        matrix: Any,
        *,
        symmetric: bool | None = None,
        psd: bool | None = None,
        check_finite: bool = True,
    ) -> None:
        kind = _sparse_kind(matrix)
        if kind == "scipy" and matrix.format not in ("csr", "csc", "coo", "bsr", "dia"):
            matrix = matrix.tocsr()  # LIL and DOK are for building, not for products
        if kind is None and not is_array(matrix):
            message = (
                "MatrixOperator needs a 2-D array or a sparse matrix, got "
                f"{type(matrix).__name__}; use FunctionOperator for a callable"
            )
            raise TypeError(message)
        xp, matrix_device = _namespace_and_device(matrix, kind)
        if len(matrix.shape) != 2:
            message = f"MatrixOperator needs a 2-D matrix, got shape {tuple(matrix.shape)}"
            raise ValueError(message)
        check_floating_dtype(xp, matrix.dtype, "the matrix")
        self._matrix = matrix
        self._kind = kind or "dense"
        if check_finite and not self._all_entries_finite(xp):
            message = "the matrix has NaN or infinite entries; pass check_finite=False to skip"
            raise ValueError(message)
        super().__init__(
            tuple(matrix.shape),
            matrix.dtype,
            xp=xp,
            device=matrix_device,
            symmetric=symmetric,
            psd=psd,
        )
        self._adjoint_matrix: Any = None

    @property
    def matrix(self) -> Any:
        """The wrapped matrix (not a copy)."""
        return self._matrix

    @property
    def is_dense(self) -> bool:
        """Whether the wrapped matrix is a dense array (not SciPy, CuPy or torch sparse)."""
        return self._kind == "dense"

    def todense(self) -> Any:
        """Return the matrix as a dense array of the operator's library."""
        if self._kind == "dense":
            return self._xp.asarray(self._matrix, copy=True)
        if self._kind == "torch":
            return self._matrix.to_dense()
        return self._matrix.toarray()

    def relative_asymmetry(self) -> float | None:
        """Return ``max|A - A^H| / max|A|`` (0 for a zero matrix), or ``None`` if not checked.

        One pass over the stored entries: dense arrays of any library and SciPy / CuPy sparse
        matrices; ``None`` for torch sparse tensors (convert with ``todense`` to check).

        Examples
        --------
        >>> import numpy as np
        >>> import hvpseries as hs
        >>> hs.aslinearoperator(np.array([[1.0, 2.0], [0.0, 1.0]])).relative_asymmetry()
        1.0
        """
        xp = self._xp
        if self._kind == "torch":
            return None
        if self._kind == "dense":
            matrix = self._matrix
            largest = float(xp.max(xp.abs(matrix))) if matrix.size else 0.0
            if is_complex_dtype(xp, matrix.dtype):
                difference = matrix - xp.conj(xp.matrix_transpose(matrix))
            else:
                difference = matrix - xp.matrix_transpose(matrix)
            asymmetry = float(xp.max(xp.abs(difference))) if matrix.size else 0.0
        else:
            matrix = self._matrix
            if matrix.nnz == 0:
                return 0.0
            largest = float(abs(matrix).max())
            asymmetry = float(abs(matrix - matrix.conj().T).max())
        return asymmetry / largest if largest > 0 else 0.0

    def _all_entries_finite(self, xp: Any) -> bool:
        if self._kind == "dense":
            values = self._matrix
        elif self._kind == "torch":
            coo = self._matrix.is_sparse  # True for COO only; CSR/CSC/BSR store values() directly
            values = self._matrix.coalesce().values() if coo else self._matrix.values()
        else:
            values = self._matrix.data
        # abs(): torch refuses isfinite on the complex values of a CSR tensor
        return bool(xp.all(xp.isfinite(xp.abs(values))))

    def _matvec(self, x: Any) -> Any:
        return self._matrix @ x

    def _matmat(self, X: Any) -> Any:
        return self._matrix @ X

    def _rmatvec(self, x: Any) -> Any:
        return self._conjugate_transpose() @ x

    def _rmatmat(self, X: Any) -> Any:
        return self._conjugate_transpose() @ X

    def _conjugate_transpose(self) -> Any:
        if self._symmetric:
            return self._matrix
        if self._adjoint_matrix is None:
            xp, matrix = self._xp, self._matrix
            complex_entries = xp.isdtype(self._dtype, "complex floating")
            if self._kind == "dense":
                adjoint = xp.matrix_transpose(matrix)
                self._adjoint_matrix = xp.conj(adjoint) if complex_entries else adjoint
            elif self._kind == "torch":
                adjoint = matrix.mT
                self._adjoint_matrix = adjoint.conj().resolve_conj() if complex_entries else adjoint
            else:
                self._adjoint_matrix = matrix.conj().T if complex_entries else matrix.T
        return self._adjoint_matrix


def _namespace_and_device(matrix: Any, kind: str | None) -> tuple[Any, Any]:
    if kind is None:
        return array_namespace(matrix), device(matrix)
    if kind == "scipy":
        return numpy_namespace(), "cpu"
    if kind == "torch":
        import array_api_compat.torch as xp_torch

        return xp_torch, matrix.device
    import array_api_compat.cupy as xp_cupy

    return xp_cupy, matrix.data.device
