"""The symmetric Lanczos process with full, partial or no reorthogonalisation."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._core._array_api import (
    add_scaled,
    device,
    dtype_name,
    epsilon,
    is_complex_dtype,
    requires_grad,
)
from .._core._checks import check_choice, check_positive_int
from .._core._in_place import add_scaled_, divide_into
from .._core._vector_space import VectorSpace
from .._operators._base import LinearOperator
from .._operators._convert import aslinearoperator
from .._solve._rhs_scaling import accurate_norm
from .._solve._validation import prepare_system, require_not_nonsymmetric

__all__ = ["LanczosDecomposition", "lanczos"]

REORTHOGONALIZE_CHOICES = ("full", "partial", "none")

# Basis vectors are stored in stacked blocks of this many vectors: reorthogonalisation then is a
# few matrix-vector products (BLAS-2) instead of one dot product per stored vector.
_CHUNK = 64
_FIRST_CAPACITY = 8


@dataclass(frozen=True, repr=False)
class LanczosDecomposition:
    r"""Frozen result of :func:`lanczos`: ``A Q = Q T + r e_m^T``.

    Attributes
    ----------
    basis : array, shape (n, m)
        The Lanczos vectors ``Q`` (orthonormal up to the chosen reorthogonalisation), in the
        library, device and dtype of the operator.
    alpha : numpy.ndarray, shape (m,)
        Diagonal of the tridiagonal ``T`` (float64, on the host).
    beta : numpy.ndarray, shape (m,)
        ``beta[:m-1]`` is the off-diagonal of ``T``; ``beta[m-1]`` is the norm of the residual
        vector (zero after a breakdown).
    residual : array, shape (n,)
        The residual vector ``r = A Q e_m - Q T e_m`` (``beta[m-1]`` times the next Lanczos
        vector), zero after a breakdown.
    start_norm : float
        Norm of the starting vector ``v`` (``Q e_1 = v / start_norm``).
    n_matvec : int
        Number of operator applications used (``m``).
    breakdown : bool
        Whether the process stopped early because the Krylov space became invariant: then
        ``Q`` spans an invariant subspace and ``T`` holds exact eigenvalues of ``A``.
    n_reorthogonalizations : int
        How many steps were reorthogonalised against earlier vectors.

    Examples
    --------
    >>> import numpy as np
    >>> from hvpseries import krylov
    >>> A = np.diag([1.0, 2.0, 3.0, 4.0])
    >>> decomposition = krylov.lanczos(A, np.ones(4), 2)
    >>> decomposition.basis.shape, decomposition.n_matvec, decomposition.breakdown
    ((4, 2), 2, False)
    """

    basis: Any
    alpha: np.ndarray
    beta: np.ndarray
    residual: Any
    start_norm: float
    n_matvec: int
    breakdown: bool
    n_reorthogonalizations: int

    @property
    def num_steps(self) -> int:
        """The number of Lanczos steps ``m`` (columns of ``basis``)."""
        return int(self.alpha.size)

    @property
    def tridiagonal(self) -> np.ndarray:
        """The tridiagonal matrix ``T = Q^T A Q`` as a dense float64 NumPy array."""
        off = self.beta[: self.num_steps - 1]
        return np.diag(self.alpha) + np.diag(off, 1) + np.diag(off, -1)

    def ritz_values(self) -> np.ndarray:
        """Eigenvalues of ``T`` (Ritz values of ``A``), ascending, as a NumPy array."""
        return _tridiagonal_eigh(self.alpha, self.beta[: self.num_steps - 1])[0]

    def __repr__(self) -> str:
        return (
            f"LanczosDecomposition(num_steps={self.num_steps}, n_matvec={self.n_matvec}, "
            f"breakdown={self.breakdown}, residual_norm={float(self.beta[-1]):.3g})"
        )


def lanczos(
    A: Any,
    v: Any,
    num_matvecs: int,
    *,
    reorthogonalize: str = "full",
) -> LanczosDecomposition:
    r"""Run ``num_matvecs`` steps of the symmetric Lanczos process from ``v``.

    Builds an orthonormal basis ``Q`` of the Krylov space
    ``K_m(A, v) = span{v, A v, ..., A^{m-1} v}`` and the tridiagonal ``T = Q^T A Q`` such that
    ``A Q = Q T + r e_m^T``.

    Parameters
    ----------
    A : LinearOperator or matrix
        A symmetric (Hermitian) operator; anything :func:`hvpseries.aslinearoperator` accepts.
        Operators tagged ``symmetric=False`` are refused; untagged ones are assumed symmetric.
    v : array, shape (n,)
        The nonzero starting vector, in the operator's library and device.
    num_matvecs : int
        The number of steps ``m`` (one matvec each); fewer are taken after a breakdown.
    reorthogonalize : {"full", "partial", "none"}, default "full"
        ``"full"``: every new vector is orthogonalised against all earlier ones (``O(n m)``
        work per step, orthogonal to working precision). ``"partial"``: Simon's
        partial reorthogonalisation; the loss of orthogonality is tracked by the cheap
        omega recurrence and vectors are reorthogonalised (against the affected blocks only)
        when it exceeds ``sqrt(eps)``; this keeps semi-orthogonality, which is enough for
        ``T`` to be accurate to working precision. ``"none"``: the plain three-term
        recurrence (cheapest; orthogonality is lost once Ritz values converge, which creates
        spurious copies of eigenvalues and delays convergence).

    Returns
    -------
    LanczosDecomposition

    Raises
    ------
    ValueError
        If ``v`` is zero or not a vector, the operator is tagged non-symmetric, or
        ``reorthogonalize`` is unknown.
    TypeError
        For mixed array libraries or a non-integer ``num_matvecs``.

    Notes
    -----
    Breakdown: when ``beta_j`` falls below ``eps^(3/4) ||T_j||`` the Krylov space is
    invariant (to that relative accuracy; rounding in the products alone makes ``beta_j``
    a few hundred ``eps ||A||`` in an exactly invariant subspace); the process stops,
    ``breakdown`` is ``True`` and ``T`` holds eigenvalues of ``A``. The basis is kept in
    blocks of 64 vectors so that reorthogonalisation runs as matrix-vector products. ``T``
    lives on the host as float64 (it is tiny); the vectors stay on the operator's device.

    References
    ----------
    .. [1] H. D. Simon, "The Lanczos algorithm with partial reorthogonalization",
       Math. Comp. 42 (1984), 115-142.
    .. [2] B. N. Parlett, *The Symmetric Eigenvalue Problem*, SIAM, 1998.

    Examples
    --------
    >>> import numpy as np
    >>> from hvpseries import krylov
    >>> A = np.diag([1.0, 2.0, 3.0, 4.0])
    >>> decomposition = krylov.lanczos(A, np.ones(4), 10)
    >>> decomposition.breakdown, decomposition.n_matvec
    (True, 4)
    >>> np.round(decomposition.ritz_values(), 12)
    array([1., 2., 3., 4.])
    """
    operator, v = prepare_system(A, v)
    require_not_nonsymmetric(operator, "lanczos")
    check_real(operator, "lanczos")
    check_positive_int(num_matvecs, "num_matvecs")
    check_reorthogonalize(reorthogonalize)
    if v.ndim != 1:
        message = f"lanczos needs a single starting vector of shape (n,), got {tuple(v.shape)}"
        raise ValueError(message)
    return run_lanczos(operator, v, num_matvecs, reorthogonalize=reorthogonalize)


def run_lanczos(
    operator: LinearOperator, v: Any, num_matvecs: int, *, reorthogonalize: str
) -> LanczosDecomposition:
    """Run :func:`lanczos` on checked input: ``v`` a vector of the operator's kind.

    For callers that made ``v`` themselves (the spectral estimates' random start).

    Raises
    ------
    ValueError
        If ``v`` is zero or not finite.
    """
    start_norm = accurate_norm(operator.vector_space, v)
    if start_norm == 0.0 or not math.isfinite(start_norm):
        message = f"the starting vector must be nonzero and finite, its norm is {start_norm}"
        raise ValueError(message)
    process = LanczosProcess(operator, v / start_norm, reorthogonalize=reorthogonalize, store=True)
    while process.num_steps < num_matvecs and process.step():
        pass
    m = process.num_steps
    basis = process.basis.matrix(m)
    return LanczosDecomposition(
        basis=basis,
        alpha=np.asarray(process.alpha[:m], dtype=np.float64),
        beta=np.asarray(process.beta[:m], dtype=np.float64),
        residual=process.residual(),
        start_norm=start_norm,
        n_matvec=process.n_matvec,
        breakdown=process.broke_down,
        n_reorthogonalizations=process.n_reorthogonalizations,
    )


def check_reorthogonalize(reorthogonalize: Any) -> None:
    """Raise ``ValueError`` unless ``reorthogonalize`` is one of the known strategies."""
    check_choice(reorthogonalize, "reorthogonalize", REORTHOGONALIZE_CHOICES)


def checked_symmetric_operator(A: Any, method: str) -> LinearOperator:
    """Return ``A`` as a square operator not tagged non-symmetric, or raise naming ``method``.

    Raises
    ------
    ValueError
        For a non-square operator, or one tagged (or probed) non-symmetric.
    TypeError
        For an argument :func:`hvpseries.aslinearoperator` does not accept.
    """
    operator = aslinearoperator(A)
    if not operator.is_square:
        message = f"{method} needs a square operator, got shape {operator.shape}"
        raise ValueError(message)
    require_not_nonsymmetric(operator, method)
    return operator


def check_finite_coefficients(alpha: Any, beta: Any) -> None:
    """Raise ``ValueError`` if Lanczos coefficients are not finite (a non-finite matvec)."""
    if not (np.all(np.isfinite(alpha)) and np.all(np.isfinite(beta))):
        message = (
            "the operator produced NaN or infinite values on a finite vector; check its matvec "
            "(and the matrix entries) for non-finite values and overflow"
        )
        raise ValueError(message)


def check_real(operator: LinearOperator, method: str) -> None:
    """Raise ``TypeError`` for a complex operator (the Lanczos code here is real)."""
    if is_complex_dtype(operator.xp, operator.dtype):
        message = (
            f"{method} supports real symmetric operators; got a complex operator "
            f"({dtype_name(operator.dtype)}). Split a Hermitian problem into its real "
            "2n x 2n form [[Re, -Im], [Im, Re]]"
        )
        raise TypeError(message)


def _tridiagonal_eigh(alpha: np.ndarray, off: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Host-side on purpose: T is tiny (m x m) and LAPACK's MRRR solver is the right tool.
    from scipy.linalg import eigh_tridiagonal

    if alpha.size == 1:
        return alpha.copy(), np.ones((1, 1))
    return eigh_tridiagonal(alpha, off)


class _Basis:
    """Lanczos vectors stored in stacked blocks of ``_CHUNK`` rows (each row one vector).

    The coefficients of a projection are inner products, taken in ``space``: one
    ``space.gram`` call (one reduction) per stored block. The block being filled is a
    buffer whose rows are written in place (see :meth:`_first_block` for its capacity), so a
    projection never copies the basis: stacking the pending vectors at every step cost
    ``O(n m^2)`` copies, 17 ms of a 20-step refresh at ``n = 1.5 * 10^5``.
    """

    def __init__(self, xp: Any, space: VectorSpace) -> None:
        self.xp = xp
        self.space = space
        self.blocks: list[Any] = []
        self.buffer: Any = None
        self.count = 0  # rows of the buffer in use

    def __len__(self) -> int:
        return len(self.blocks) * _CHUNK + self.count

    def append(self, q: Any) -> None:
        """Add the basis vector ``q``; a full block is moved to the stored blocks."""
        if requires_grad(q):
            self._concat(q)
        else:
            self._next_row(q)[...] = q
            self._count_row()

    def append_quotient(self, w: Any, beta: float) -> Any:
        """Store ``w / beta`` as the next basis vector and return it.

        The quotient is written straight into its row (one pass, no temporary vector); the
        returned vector is that row, a view of the stored block.
        """
        if requires_grad(w):
            q = w / beta
            self._concat(q)
            return q
        q = divide_into(self._next_row(w), w, beta)
        self._count_row()
        return q

    def _concat(self, q: Any) -> None:
        # autograd may have saved the rows for a backward pass: a new tensor, never in place
        row = q[None, ...]
        used = None if self.buffer is None else self.buffer[: self.count, ...]
        self.buffer = row if used is None else self.xp.concat([used, row], axis=0)
        self._count_row()

    def _next_row(self, q: Any) -> Any:
        """Return the buffer row the next vector goes to (a view), growing the buffer."""
        xp = self.xp
        if self.buffer is None:
            self.buffer = self._first_block(q)
        elif self.count == self.buffer.shape[0]:
            grown = xp.empty(
                (min(2 * self.count, _CHUNK), *q.shape), dtype=q.dtype, device=device(q)
            )
            grown[: self.count, ...] = self.buffer
            self.buffer = grown
        return self.buffer[self.count, ...]

    def _count_row(self) -> None:
        self.count += 1
        if self.count == _CHUNK:
            self.blocks.append(self.buffer)
            self.buffer, self.count = None, 0

    def _first_block(self, q: Any) -> Any:
        """Return an empty block for the rows to come, ``q``'s shape, dtype and device.

        On the host a whole block of ``_CHUNK`` rows: its memory is mapped only where rows
        are written, and growing a block copies rows (an append took 3.4x longer at
        ``n = 10^5``). Device memory is taken when allocated, so a device block starts at
        ``_FIRST_CAPACITY`` rows and doubles; so does a host block the allocator refuses
        (larger than the machine's memory, under Linux's default overcommit rule).
        """
        xp = self.xp
        if "cpu" in str(device(q)).lower():
            try:
                return xp.empty((_CHUNK, *q.shape), dtype=q.dtype, device=device(q))
            except (MemoryError, RuntimeError):  # NumPy's, and torch's CPU allocator's
                pass
        return xp.empty((_FIRST_CAPACITY, *q.shape), dtype=q.dtype, device=device(q))

    def _groups(self) -> list[tuple[int, Any]]:
        groups = [(i * _CHUNK, block) for i, block in enumerate(self.blocks)]
        if self.count:
            groups.append((len(self.blocks) * _CHUNK, self.buffer[: self.count, ...]))
        return groups

    def project_out(self, w: Any, selected: np.ndarray | None = None) -> Any:
        """Return ``w`` minus its components along the stored vectors (block Gram-Schmidt).

        ``selected`` (a boolean mask over the stored vectors) limits the work to the blocks
        holding a selected vector.
        """
        xp = self.xp
        for start, block in self._groups():
            if selected is not None and not bool(np.any(selected[start : start + block.shape[0]])):
                continue
            # block is Q_block^T (rows are vectors): gram(Q_block, w) = Q_block^T w, no copy
            coefficients = self.space.gram(xp.matrix_transpose(block), w)
            w = w - coefficients @ block  # one dtype: the operator, without xp's promotion
        return w

    def combine(self, coefficients: np.ndarray, dtype: Any, device: Any) -> Any:
        """Return ``Q[:, :m] @ coefficients`` (``m = len(coefficients)``) on the device."""
        xp = self.xp
        m = coefficients.shape[0]
        y = xp.asarray(coefficients, dtype=dtype, device=device)
        x = None
        for start, block in self._groups():
            if start >= m:
                break
            stop = min(start + block.shape[0], m)
            part = xp.matmul(y[start:stop], block[: stop - start, :])
            x = part if x is None else x + part
        return x

    def matrix(self, m: int) -> Any:
        """Return the first ``m`` vectors as the columns of an ``(n, m)`` array."""
        xp = self.xp
        rows = xp.concat([block for _, block in self._groups()], axis=0)[:m, :]
        return xp.matrix_transpose(rows)


class LanczosProcess:
    """The Lanczos recurrence for one normalised start vector (internal building block).

    ``step()`` spends one matvec and appends ``alpha_j`` and ``beta_j``; it returns ``False``
    after a breakdown. With ``store=False`` only the last two vectors are kept (for two-pass
    methods), which requires ``reorthogonalize="none"``.
    """

    def __init__(
        self, operator: LinearOperator, q0: Any, *, reorthogonalize: str, store: bool
    ) -> None:
        if not store and reorthogonalize != "none":
            message = "reorthogonalisation needs the stored basis (use reorthogonalize='none')"
            raise ValueError(message)
        self.xp = operator.xp
        self.space = operator.vector_space
        self.apply = operator._matvec
        self.mode = reorthogonalize
        self.eps = epsilon(operator.xp, operator.dtype)
        n = operator.global_shape[0]
        # Rounding level of a freshly orthogonalised vector (as in PROPACK).
        self.eps1 = math.sqrt(n) * self.eps / 2
        self.alpha: list[float] = []
        self.beta: list[float] = []
        self.q = q0
        self.q_prev: Any = None
        self.w: Any = None
        self.basis = _Basis(self.xp, self.space) if store else None
        if self.basis is not None:
            self.basis.append(q0)
        self.anorm = 0.0
        self.n_matvec = 0
        self.broke_down = False
        self.breakdown_residual = 0.0
        self.n_reorthogonalizations = 0
        # Partial reorthogonalisation: estimates omega_{j,k} ~ q_j . q_k for the current and
        # previous vector, and the selection to repeat at the next step.
        self.omega = np.ones(1)
        self.omega_prev = np.zeros(0)
        self.repeat_selection: np.ndarray | None = None

    @property
    def num_steps(self) -> int:
        """The Lanczos steps taken so far (the size of ``T``)."""
        return len(self.alpha)

    def step(self) -> bool:
        """Extend the recurrence by one step; return ``False`` if it broke down."""
        if self.broke_down:
            return False
        space = self.space
        j = len(self.alpha)
        w = self.apply(self.q)  # may be a view of q or a buffer the operator reuses
        self.n_matvec += 1
        if j > 0:
            w = add_scaled(w, self.q_prev, -self.beta[j - 1])  # a new array: ours from here
        alpha = float(space.inner(self.q, w))
        w = add_scaled_(w, self.q, -alpha) if j > 0 else add_scaled(w, self.q, -alpha)
        # accurate also where w w underflows (an operator of norm ~1e-25 in float32)
        beta = accurate_norm(space, w)
        self.alpha.append(alpha)
        previous_beta = self.beta[j - 1] if j > 0 else 0.0
        self.anorm = max(self.anorm, math.hypot(alpha, previous_beta, beta))  # no underflow
        if self.mode == "full" and self.basis is not None:
            w, beta = self._reorthogonalize(w, beta, None)
        elif self.mode == "partial" and self.basis is not None:
            w, beta = self._partial(w, alpha, beta, j)
        self.beta.append(beta)
        if not math.isfinite(beta) or not math.isfinite(alpha):
            self.broke_down = True
            self.w = w
            return False
        if beta <= self.eps**0.75 * self.anorm:
            self.broke_down = True
            self.breakdown_residual = beta
            self.beta[j] = 0.0
            self.w = self.xp.zeros_like(w)
            return False
        self.w = None  # the residual is beta_m q_{m+1}, formed only when asked for
        if self.basis is not None:
            q = self.basis.append_quotient(w, beta)
        else:
            q = divide_into(w, w, beta)  # the previous q_prev is not needed any more
        self.q_prev, self.q = self.q, q
        return True

    def residual(self) -> Any:
        """Return the residual vector ``beta_m q_{m+1}`` of the last step."""
        return self.w if self.w is not None else self.beta[-1] * self.q

    def _reorthogonalize(self, w: Any, beta: float, selected: np.ndarray | None) -> tuple:
        # Block classical Gram-Schmidt, repeated once when it removed a large component
        # ("twice is enough", Kahan/Parlett).
        assert self.basis is not None
        self.n_reorthogonalizations += 1
        for _ in range(2):
            w = self.basis.project_out(w, selected)
            new_beta = accurate_norm(self.space, w)
            removed_little = new_beta > 0.7 * beta
            beta = new_beta
            if removed_little:
                break
        return w, beta

    def _partial(self, w: Any, alpha: float, beta: float, j: int) -> tuple:
        # Simon's omega recurrence estimates omega_{j+1,k} = q_{j+1} . q_k for k <= j from
        # the coefficients alone (O(j) host work per step).
        omega, omega_prev = self.omega, self.omega_prev  # lengths j+1 and j
        alphas = np.asarray(self.alpha)
        betas = np.asarray(self.beta)  # beta_0..beta_{j-1}
        new = np.empty(j + 2)
        if j > 0 and beta > 0:
            k = np.arange(j)
            t = betas[k] * omega[k + 1] + (alphas[k] - alpha) * omega[k]
            t[1:] += betas[: j - 1] * omega[: j - 1]
            t -= betas[j - 1] * omega_prev[:j]
            t += np.copysign(self.eps1 * (betas[k] + beta), t)
            new[:j] = t / beta
        new[j] = self.eps1
        new[j + 1] = 1.0
        selection = None
        if self.repeat_selection is not None:
            selection = np.zeros(j + 1, dtype=bool)
            selection[: self.repeat_selection.size] = self.repeat_selection
            self.repeat_selection = None
        elif j > 0 and float(np.max(np.abs(new[:j]))) > math.sqrt(self.eps):
            eta = self.eps**0.75
            selection = np.abs(new[: j + 1]) > eta
            self.repeat_selection = selection
        if selection is not None:
            # Reorthogonalise against the blocks with a selected vector; the whole block is
            # cleaned, so reset omega over whole blocks.
            w, beta = self._reorthogonalize(w, beta, selection)
            blocks = np.flatnonzero(selection) // _CHUNK
            for block in np.unique(blocks):
                new[block * _CHUNK : min((block + 1) * _CHUNK, j + 1)] = self.eps1
        self.omega_prev, self.omega = omega, new
        return w, beta
