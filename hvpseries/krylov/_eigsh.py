"""Extreme eigenpairs of a symmetric operator: thick-restart Lanczos with locking."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._core._array_api import epsilon
from .._core._checks import check_choice, check_maxiter, check_positive_int, check_tolerances
from .._core._result import Status
from .._operators._base import LinearOperator
from .._operators._explicit import MatrixOperator
from .._solve._rhs_scaling import accurate_norm
from .._solve._validation import prepare_system
from ._lanczos import check_real, checked_symmetric_operator
from ._spectrum import _check_seed
from ._thick_restart import (
    RitzPairs,
    ThickRestartLanczos,
    residual_tolerances,
    select_wanted,
    wanted_counts,
)

__all__ = ["EigshResult", "eigsh"]

WHICH_CHOICES = ("LA", "SA", "LM", "BE")


@dataclass(frozen=True, eq=False, repr=False)
class EigshResult:
    """Frozen result of :func:`eigsh`.

    Attributes
    ----------
    eigenvalues : numpy.ndarray, shape (k,)
        The computed eigenvalues (Ritz values), float64, ascending.
    eigenvectors : array, shape (n, k) or None
        The orthonormal eigenvectors (column ``i`` belongs to ``eigenvalues[i]``) in the
        library, device and dtype of the operator; ``None`` with
        ``return_eigenvectors=False`` or after a non-finite product.
    residual_norms : numpy.ndarray, shape (k,)
        The residual norms ``||A v_i - lambda_i v_i||`` of the returned pairs, computed from
        the stored products ``A Q`` of the basis (no extra matvec): true residuals, equal to
        those of explicit products up to rounding (see :func:`eigsh`, Notes).
    tolerances : numpy.ndarray, shape (k,)
        The tolerance of each pair: pair ``i`` is converged when
        ``residual_norms[i] <= tolerances[i]`` (see :func:`eigsh`, Notes).
    converged : numpy.ndarray of bool, shape (k,)
        Which pairs meet their tolerance on ``residual_norms`` (never on an estimate).
    status : Status
        ``SUCCESS`` if every pair converged; ``MAX_ITERATIONS`` if ``maxiter`` restarts did
        not suffice; ``STAGNATED`` if the estimates converged but a residual norm is above its
        tolerance (rounding, or an operator that is not symmetric); ``NONFINITE`` if a
        product returned NaN or infinite values.
    n_matvec : int
        Operator applications spent: one per Lanczos step (the residuals need none; 0 for
        the dense path).
    n_restarts : int
        Thick restarts performed.
    """

    eigenvalues: np.ndarray
    eigenvectors: Any
    residual_norms: np.ndarray
    tolerances: np.ndarray
    converged: np.ndarray
    status: Status
    n_matvec: int
    n_restarts: int

    @property
    def all_converged(self) -> bool:
        """Whether every requested pair converged (``status`` is ``SUCCESS``)."""
        return self.status is Status.SUCCESS

    @property
    def message(self) -> str:
        """What the status means and what to do about it."""
        return self.status.value

    def __repr__(self) -> str:
        return (
            f"EigshResult(eigenvalues={self.eigenvalues!r}, status={self.status.name}, "
            f"converged={int(np.count_nonzero(self.converged))}/{self.converged.size}, "
            f"n_matvec={self.n_matvec}, n_restarts={self.n_restarts})"
        )


def eigsh(
    A: Any,
    k: int = 6,
    which: str = "LA",
    *,
    rtol: float = 1e-8,
    maxiter: int | None = None,
    ncv: int | None = None,
    v0: Any = None,
    seed: int = 0,
    return_eigenvectors: bool = True,
) -> EigshResult:
    r"""Compute ``k`` extreme eigenpairs of a real symmetric operator.

    Thick-restart Lanczos with locking: the matrix-free counterpart of
    :func:`scipy.sparse.linalg.eigsh` for any operator of hvpseries (dense or sparse
    matrices, PyTorch or CuPy arrays, Hessian-vector products, row-sharded operators).

    Parameters
    ----------
    A : LinearOperator or matrix
        A real symmetric ``n x n`` operator (anything :func:`hvpseries.aslinearoperator`
        accepts). Operators tagged ``symmetric=False`` are refused.
    k : int, default 6
        Number of eigenpairs, ``1 <= k < n``.
    which : {"LA", "SA", "LM", "BE"}, default "LA"
        Which eigenvalues: largest algebraic, smallest algebraic, largest magnitude, or both
        ends (``k // 2`` from the bottom and ``k - k // 2`` from the top, as SciPy's "BE").
    rtol : float, default 1e-8
        Relative tolerance of the residual norms (keyword-only, > 0).
    maxiter : int, optional
        Maximum number of Lanczos cycles (restarts plus one); ``10 n`` (SciPy's) if omitted.
    ncv : int, optional
        Size of the Lanczos basis, ``k < ncv <= n``; ``min(n, max(2 k + 1, 20))`` if omitted
        (SciPy's default).
    v0 : array, shape (n,), optional
        Start vector (not modified); a seeded random Gaussian vector if omitted.
    seed : int, default 0
        Seed of the random start vector (and of the fresh vectors drawn after a breakdown).
    return_eigenvectors : bool, default True
        Whether to return the eigenvectors (they are formed in any case, for the residuals).

    Returns
    -------
    EigshResult
        Ascending ``eigenvalues``, ``eigenvectors``, true ``residual_norms``, ``converged``.

    Raises
    ------
    ValueError
        For a non-square operator, one tagged non-symmetric (or a visibly non-symmetric
        matrix), bad ``k``, ``which``, ``ncv``, ``rtol``, ``maxiter`` or ``seed`` values, or a
        zero, non-finite or misshapen ``v0``.
    TypeError
        For a complex operator, arguments of the wrong type, or a ``v0`` of another library.

    Notes
    -----
    A cycle extends the basis ``Q = [Y, q, ...]`` of ``l`` kept Ritz vectors ``Y`` and the
    residual direction ``q`` to ``ncv`` orthonormal vectors (minus the locked ones) by the
    Lanczos recurrence with full reorthogonalisation (classical Gram-Schmidt, twice). Then
    ``A Q = Q H + beta_m q_{m+1} e_m^T`` with ``H = Q^T A Q`` (an arrow of couplings to ``q``
    above a tridiagonal block), and with ``H = S \Theta S^T`` a Ritz pair ``(theta_i, Q s_i)``
    has the residual estimate ``|beta_m s_{m,i}|``; it is converged when

    ``|beta_m s_{m,i}| <= tol_i = max(rtol max(|theta_i|, eps^(2/3) ||A||), 10 sqrt(n) eps ||A||)``

    (``||A||`` estimated by the largest ``|theta|`` and Lanczos coefficient seen; the second
    term is the rounding level), tested after every step. At a restart the converged wanted
    pairs are *locked* (they leave the active basis; the estimates of the others include the
    dropped couplings, so the test stays a bound), and the wanted Ritz vectors are kept with
    a few neighbours: at most ARPACK's count (``k`` plus one per converged pair, up to
    ``(ncv - k) // 2``) plus two, as many as maximise a Chebyshev model of the next cycle's
    convergence [3]_. After a breakdown the basis goes on from a fresh random vector.

    The products ``W = A Q`` are stored beside the basis (``ncv`` extra ``n``-vectors, twice
    the basis) and follow every change of basis, so the residual ``W s - theta v`` of a
    returned pair ``(theta, v = Q s)`` needs no matvec; ``residual_norms`` and ``converged``
    come from it, never from the estimates (why it is as good as an explicit ``A v - theta v``:
    ``hvpseries.krylov._thick_restart``). Small dense matrices (``n <= 2 ncv``) are solved by a
    dense ``eigh`` on the host, the residuals computed there in float64; other small operators
    use ``ncv = n`` when ``ncv`` is not given.

    Like any single-vector Krylov method it finds copies of a multiple eigenvalue only slowly,
    through rounding: with exactly repeated wanted eigenvalues (a Laplacian on a square grid)
    it may return one copy and the next eigenvalue. Reductions go through ``A.vector_space``.

    References
    ----------
    .. [1] K. Wu and H. Simon, "Thick-restart Lanczos method for large symmetric eigenvalue
       problems", SIAM J. Matrix Anal. Appl. 22 (2000), 602-616.
    .. [2] R. B. Lehoucq, D. C. Sorensen and C. Yang, "ARPACK Users' Guide", SIAM (1998).
    .. [3] I. Yamazaki, Z. Bai, H. Simon, L.-W. Wang and K. Wu, "Adaptive projection subspace
       dimension for the thick-restart Lanczos method", ACM Trans. Math. Software 37 (2010).

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> from hvpseries import krylov
    >>> A = sp.diags(np.arange(1.0, 201.0)).tocsr()
    >>> result = krylov.eigsh(A, k=3, which="LA")
    >>> result.eigenvalues.round(8), result.all_converged
    (array([198., 199., 200.]), True)
    >>> bool(np.all(result.residual_norms <= 1e-8 * 200)), result.n_matvec < 200
    (True, True)
    >>> krylov.eigsh(A, k=2, which="BE").eigenvalues.round(8)
    array([  1., 200.])
    """
    operator = _checked_operator(A)
    n = operator.global_shape[0]
    _check_arguments(n, k, which, rtol, maxiter, ncv, seed, return_eigenvectors)
    v0 = None if v0 is None else _checked_start(operator, v0)
    maxiter = 10 * n if maxiter is None else maxiter
    return _solve(operator, k, which, rtol, maxiter, ncv, v0, seed, return_eigenvectors)


def _solve(
    operator: LinearOperator,
    k: int,
    which: str,
    rtol: float,
    maxiter: int,
    ncv: int | None,
    v0: Any,
    seed: int,
    return_eigenvectors: bool,
) -> EigshResult:
    """Run :func:`eigsh` on validated arguments: a dense ``eigh`` or thick-restart Lanczos."""
    n = operator.global_shape[0]
    basis_size = min(n, max(2 * k + 1, 20)) if ncv is None else ncv
    small = n <= 2 * basis_size
    if small and isinstance(operator, MatrixOperator) and operator.is_dense:
        return _dense_eigsh(operator, k, which, rtol, return_eigenvectors)
    # other small operators: an exact Lanczos run, unless ncv was given
    ncv = n if small and ncv is None else basis_size
    solver = ThickRestartLanczos(operator, k, which, rtol=rtol, ncv=ncv, seed=seed)
    return _result(operator, k, solver.run(v0, maxiter), rtol, return_eigenvectors)


def _checked_operator(A: Any) -> LinearOperator:
    operator = checked_symmetric_operator(A, "eigsh")
    check_real(operator, "eigsh")
    return operator


def _check_arguments(
    n: int,
    k: Any,
    which: Any,
    rtol: Any,
    maxiter: Any,
    ncv: Any,
    seed: Any,
    return_eigenvectors: Any,
) -> None:
    check_positive_int(k, "k")
    if k >= n:
        message = (
            f"eigsh needs 1 <= k < n, got k={k} for n={n}; for all eigenvalues of a small "
            "matrix use numpy.linalg.eigh on A.todense()"
        )
        raise ValueError(message)
    check_choice(which, "which", WHICH_CHOICES)
    check_tolerances(rtol, 0.0)
    if rtol == 0:
        message = "rtol must be > 0, got 0; pass a positive tolerance such as 1e-8"
        raise ValueError(message)
    check_maxiter(maxiter)
    check_positive_int(ncv, "ncv", allow_none=True)
    if ncv is not None and not k < ncv <= n:
        message = f"ncv must satisfy k < ncv <= n, got ncv={ncv} for k={k} and n={n}"
        raise ValueError(message)
    _check_seed(seed)
    if not isinstance(return_eigenvectors, bool):
        message = f"return_eigenvectors must be a bool, got {return_eigenvectors!r}"
        raise TypeError(message)


def _checked_start(operator: LinearOperator, v0: Any) -> Any:
    operator, v0 = prepare_system(operator, v0)
    if v0.ndim != 1:
        message = f"v0 must be a vector of shape ({operator.shape[0]},), got {tuple(v0.shape)}"
        raise ValueError(message)
    if not operator.vector_space.all_finite(v0):
        message = "v0 has NaN or infinite entries; pass a finite start vector"
        raise ValueError(message)
    if accurate_norm(operator.vector_space, v0) == 0.0:
        message = "v0 is zero; pass a nonzero start vector or omit it for a random one"
        raise ValueError(message)
    return v0


def _dense_eigsh(
    operator: MatrixOperator, k: int, which: str, rtol: float, return_eigenvectors: bool
) -> EigshResult:
    # A small dense matrix: one eigh on the host (on purpose: cheaper and more robust than a
    # Krylov run at this size). The residuals of the returned vectors (rounded to the
    # operator's dtype) are computed on the host too, in float64, with the same matrix.
    dense = _host_matrix(operator.matrix)
    values, vectors = np.linalg.eigh((dense + dense.T) / 2)
    chosen = np.concatenate(list(select_wanted(values, wanted_counts(which, k)).values()))
    xp = operator.xp
    V = xp.asarray(vectors[:, chosen], dtype=operator.dtype, device=operator.device)
    returned = _host_matrix(V)
    norms = np.linalg.norm(dense @ returned - returned * values[chosen], axis=0)
    pairs = RitzPairs(
        values=values[chosen],
        vectors=V,
        residual_norms=norms,
        anorm=float(np.max(np.abs(values))),
        stop="converged",
        n_matvec=0,
        n_restarts=0,
    )
    return _result(operator, k, pairs, rtol, return_eigenvectors)


def _host_matrix(matrix: Any) -> np.ndarray:
    """Return a small dense matrix of any library as float64 NumPy (one transfer)."""
    try:
        return np.asarray(np.from_dlpack(matrix), dtype=np.float64)
    except (TypeError, RuntimeError, BufferError, ValueError, AttributeError):
        if hasattr(matrix, "detach"):
            return np.asarray(matrix.detach().cpu().numpy(), dtype=np.float64)
        if hasattr(matrix, "get"):
            return np.asarray(matrix.get(), dtype=np.float64)
        return np.asarray(matrix, dtype=np.float64)


def _result(
    operator: LinearOperator, k: int, pairs: RitzPairs, rtol: float, return_eigenvectors: bool
) -> EigshResult:
    """Check the residual norms of ``pairs`` against their tolerances and build the result.

    A run whose estimates all converged ("converged", "exhausted") but with a residual above
    its tolerance (rounding) is ``STAGNATED``; one stopped by ``maxiter`` is
    ``MAX_ITERATIONS``.
    """
    values, norms = pairs.values, pairs.residual_norms
    if values is None or norms is None or not np.all(np.isfinite(norms)):
        return _nonfinite(k, pairs)
    n = operator.global_shape[0]
    eps = epsilon(operator.xp, operator.dtype)
    anorm = max(pairs.anorm, float(np.max(np.abs(values))))
    tolerances = residual_tolerances(values, rtol, eps, anorm, n)
    converged = norms <= tolerances
    unconverged = Status.MAX_ITERATIONS if pairs.stop == "full" else Status.STAGNATED
    status = Status.SUCCESS if bool(np.all(converged)) else unconverged
    order = np.argsort(values, kind="stable")
    xp = operator.xp
    vectors = xp.take(pairs.vectors, xp.asarray(order, device=operator.device), axis=1)
    return EigshResult(
        eigenvalues=np.asarray(values[order], dtype=np.float64),
        eigenvectors=vectors if return_eigenvectors else None,
        residual_norms=norms[order],
        tolerances=tolerances[order],
        converged=converged[order],
        status=status,
        n_matvec=pairs.n_matvec,
        n_restarts=pairs.n_restarts,
    )


def _nonfinite(k: int, pairs: RitzPairs) -> EigshResult:
    nan = np.full(k, np.nan)
    return EigshResult(
        eigenvalues=nan,
        eigenvectors=None,
        residual_norms=nan.copy(),
        tolerances=nan.copy(),
        converged=np.zeros(k, dtype=bool),
        status=Status.NONFINITE,
        n_matvec=pairs.n_matvec,
        n_restarts=pairs.n_restarts,
    )
