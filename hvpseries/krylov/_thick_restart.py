"""The thick-restart Lanczos engine of :func:`hvpseries.krylov.eigsh`, with stored products.

The basis ``Q`` and its products ``W = A Q`` are kept side by side: each Lanczos step computes
``A q_j`` anyway, and every change of basis (restart, locking: ``Q <- Q S``) applies the same
coefficients to them (``W <- W S``). The residual of a returned pair ``(theta, v = Q s)`` is
``W s - theta v``, formed on the backend without a matvec. It differs from an explicit
``A v - theta v`` only by rounding in ``W`` (of order ``eps ||A||`` per product and per restart,
far below the rounding level of the tolerance), so it catches a loss of orthogonality or a
non-symmetric operator as an explicit product would. The price is memory: ``ncv`` extra
``n``-vectors, twice the basis (see :func:`hvpseries.krylov.eigsh`, Notes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._core._array_api import epsilon, host_values
from .._operators._base import LinearOperator
from .._solve._rhs_scaling import accurate_norm
from ._spectrum import _random_start

__all__ = [
    "RitzPairs",
    "ThickRestartLanczos",
    "residual_tolerances",
    "select_wanted",
    "wanted_counts",
]

# The rounding level of a residual norm, in units of eps ||A||, per sqrt(n): no tolerance is
# taken below ``ROUNDING_FACTOR * sqrt(n) * eps * ||A||`` (the level of spectral_bounds).
ROUNDING_FACTOR = 10.0
# A converged pair is locked once its residual is below this fraction of the smallest
# tolerance of the wanted pairs.
_LOCK_FACTOR = 0.1
# Vectors a restart may keep beyond ARPACK's count, where the convergence model favours them.
_EXTRA_KEPT = 2


def wanted_counts(which: str, k: int) -> dict[str, int]:
    """Return how many eigenvalues each end contributes ("low", "high", "magnitude").

    Parameters
    ----------
    which : {"LA", "SA", "LM", "BE"}
        The part of the spectrum (see :func:`hvpseries.krylov.eigsh`).
    k : int
        The number of eigenvalues.

    Returns
    -------
    dict of str to int
        The count of each end.
    """
    if which == "LA":
        return {"high": k}
    if which == "SA":
        return {"low": k}
    if which == "LM":
        return {"magnitude": k}
    return {"low": k // 2, "high": k - k // 2}


def select_wanted(theta: np.ndarray, counts: dict[str, int]) -> dict[str, np.ndarray]:
    """Return the indices of the ``counts[end]`` values nearest each end (disjoint sets).

    Parameters
    ----------
    theta : numpy.ndarray
        The values (Ritz values or eigenvalues), in any order.
    counts : dict of str to int
        How many values each end contributes, as from :func:`wanted_counts`.

    Returns
    -------
    dict of str to numpy.ndarray
        The integer indices into ``theta`` of each end.
    """
    taken = np.zeros(theta.size, dtype=bool)
    chosen = {}
    for end, count in counts.items():
        if end == "low":
            order = np.argsort(theta, kind="stable")
        elif end == "high":
            order = np.argsort(-theta, kind="stable")
        else:
            order = np.argsort(-np.abs(theta), kind="stable")
        order = order[~taken[order]][: max(count, 0)]
        taken[order] = True
        chosen[end] = order
    return chosen


def residual_tolerances(
    theta: np.ndarray, rtol: float, eps: float, anorm: float, n: int
) -> np.ndarray:
    """Return the residual tolerance of each Ritz value (see :func:`hvpseries.krylov.eigsh`).

    Parameters
    ----------
    theta : numpy.ndarray
        The Ritz values.
    rtol : float
        The relative tolerance.
    eps : float
        The machine epsilon of the operator's dtype.
    anorm : float
        The estimate of ``||A||``.
    n : int
        The dimension.

    Returns
    -------
    numpy.ndarray
        ``max(rtol max(|theta|, eps^(2/3) anorm), ROUNDING_FACTOR sqrt(n) eps anorm)``.
    """
    scale = np.maximum(np.abs(theta), eps ** (2.0 / 3.0) * anorm)
    return np.maximum(rtol * scale, ROUNDING_FACTOR * math.sqrt(n) * eps * anorm)


@dataclass(frozen=True, eq=False)
class RitzPairs:
    """The outcome of one run of :class:`ThickRestartLanczos`.

    Attributes
    ----------
    values : numpy.ndarray or None
        The wanted Ritz values (locked ones first), float64; ``None`` after a non-finite
        product.
    vectors : array or None
        The Ritz vectors as the columns of an ``(n, k)`` array of the operator's library.
    residual_norms : numpy.ndarray or None
        ``||A v_i - theta_i v_i||`` from the stored products, float64.
    anorm : float
        The estimate of ``||A||`` (largest Ritz value and Lanczos coefficient seen).
    stop : str
        Why the run stopped: "converged" (every estimate met its tolerance), "exhausted"
        (the basis spans an invariant subspace that cannot grow), "full" (``maxiter``
        cycles) or "nonfinite".
    n_matvec : int
        Operator applications.
    n_restarts : int
        Thick restarts.
    """

    values: np.ndarray | None
    vectors: Any
    residual_norms: np.ndarray | None
    anorm: float
    stop: str
    n_matvec: int
    n_restarts: int


class ThickRestartLanczos:
    """The state of one thick-restart Lanczos run (see :func:`hvpseries.krylov.eigsh`, Notes).

    The basis is one stacked array of rows: first the ``p`` locked eigenvectors, then the
    ``m`` active vectors of the current cycle (kept Ritz vectors, then Lanczos vectors).
    ``products`` holds ``A`` applied to each row (the product of the last active row is
    missing until the Lanczos step that computes it). ``H`` is the projected matrix of the
    active vectors (host, float64).

    Parameters
    ----------
    operator : LinearOperator
        The real symmetric operator.
    k : int
        The number of wanted pairs.
    which : {"LA", "SA", "LM", "BE"}
        The wanted part of the spectrum.
    rtol : float
        The relative tolerance of the residuals.
    ncv : int
        The size of the basis.
    seed : int
        The seed of the fresh vectors drawn after a breakdown (and of the start vector).
    """

    def __init__(
        self, operator: LinearOperator, k: int, which: str, *, rtol: float, ncv: int, seed: int
    ) -> None:
        self.operator = operator
        self.xp = operator.xp
        self.space = operator.vector_space
        self.n = operator.global_shape[0]
        self.k = k
        self.rtol = rtol
        self.ncv = ncv
        self.seed = seed
        self.eps = epsilon(operator.xp, operator.dtype)
        self.counts = wanted_counts(which, k)
        # what is still wanted from each end (decreases as pairs are locked)
        self.need = dict(self.counts)
        self.locked_values: list[float] = []
        self.basis: Any = None  # rows: locked vectors, then the active vectors
        self.products: Any = None  # rows: A applied to the rows of the basis
        self.p = 0  # locked vectors
        self.m = 0  # active vectors
        self.H = np.zeros((ncv, ncv))
        # C = Y^T A Q: the couplings of the locked vectors Y to the active ones (rounding
        # level, and the residuals the locked pairs had when they were locked)
        self.C = np.zeros((k, ncv))
        self.anorm = 0.0
        self.n_matvec = 0
        self.n_restarts = 0
        self.n_fresh = 0
        self.next_q: Any = None
        self.beta = 0.0
        self.exhausted = False

    # -- the run ------------------------------------------------------------------------------

    def run(self, v0: Any, maxiter: int) -> RitzPairs:
        """Run up to ``maxiter`` cycles from ``v0`` (random if ``None``).

        Parameters
        ----------
        v0 : array or None
            The start vector, not modified.
        maxiter : int
            The maximum number of Lanczos cycles.

        Returns
        -------
        RitzPairs
            The wanted pairs with their residual norms, from the stored products.
        """
        xp = self.xp
        start = _random_start(self.operator, self.seed) if v0 is None else v0
        start = start / accurate_norm(self.space, start)
        self.basis = xp.reshape(start, (1, -1))
        self.products = self.basis[:0, :]
        self.m = 1
        cycles = 1
        while True:
            stop = self._extend()
            if stop == "nonfinite":
                return RitzPairs(None, None, None, self.anorm, stop, self.n_matvec, self.n_restarts)
            if stop in ("converged", "exhausted") or cycles >= maxiter:
                break
            self._restart()
            cycles += 1
        return self._wanted_pairs(stop)

    def _extend(self) -> str:
        """Lanczos steps until the wanted pairs converge or the basis is full."""
        space, xp = self.space, self.xp
        m_max = min(self.ncv, self.n) - self.p
        while True:
            j = self.m - 1  # the active index of the current vector (the last row)
            w = self.operator.matvec(self.basis[self.p + j, :])
            self.n_matvec += 1
            # the product of the stored row q_j, kept for the residuals (concat copies it)
            self.products = xp.concat([self.products, xp.reshape(w, (1, -1))], axis=0)
            w, coefficients = self._orthogonalize(w)
            coefficients = host_values(coefficients)
            alpha = float(coefficients[-1])
            self.C[: self.p, j] = coefficients[: self.p]
            beta = accurate_norm(space, w)
            if not (math.isfinite(alpha) and math.isfinite(beta)):
                return "nonfinite"
            self.H[j, j] = alpha
            previous = self.H[j, j - 1] if j > 0 else 0.0
            self.anorm = max(self.anorm, math.hypot(alpha, previous, beta))
            rounding = ROUNDING_FACTOR * math.sqrt(self.n) * self.eps * self.anorm
            if beta <= rounding:
                # An invariant subspace: its Ritz pairs are exact. Go on from a fresh vector
                # (its product is computed by the next step, like that of any new vector).
                self.beta = 0.0
                self.next_q = self._fresh_vector() if self.p + self.m < self.n else None
                if self.next_q is None:
                    self.exhausted = True
            else:
                self.beta = beta
                self.next_q = w / beta
            self._ritz()
            if self._all_wanted_converged():
                return "converged"
            if self.exhausted:
                return "exhausted"
            if self.m >= m_max:
                return "full"
            self.H[j, j + 1] = self.H[j + 1, j] = self.beta
            self.basis = xp.concat([self.basis, xp.reshape(self.next_q, (1, -1))], axis=0)
            self.m += 1

    def _orthogonalize(self, w: Any) -> tuple[Any, Any]:
        # Classical Gram-Schmidt against the whole basis, twice ("twice is enough"); one
        # gram (one reduction) per pass. Returns the summed coefficients.
        xp = self.xp
        rows = self.basis
        total = None
        for _ in range(2):
            coefficients = self.space.gram(xp.matrix_transpose(rows), w)
            w = w - coefficients @ rows
            total = coefficients if total is None else total + coefficients
        return w, total

    def _fresh_vector(self) -> Any | None:
        """Return a random unit vector orthogonal to the basis (``None`` if it spans all)."""
        self.n_fresh += 1
        w = _random_start(self.operator, self.seed + self.n_fresh)
        size = accurate_norm(self.space, w)
        w, _ = self._orthogonalize(w)
        norm = accurate_norm(self.space, w)
        if norm <= math.sqrt(self.eps) * size:
            return None
        return w / norm

    def _ritz(self) -> None:
        m = self.m
        self.theta, self.S = np.linalg.eigh(self.H[:m, :m])
        self.anorm = max(self.anorm, float(np.max(np.abs(self.theta))))
        estimates = np.abs(self.beta * self.S[m - 1, :])
        if self.p:
            estimates = np.hypot(estimates, np.linalg.norm(self.C[: self.p, :m] @ self.S, axis=0))
        self.estimates = estimates
        self.tol = residual_tolerances(self.theta, self.rtol, self.eps, self.anorm, self.n)
        self.wanted = select_wanted(self.theta, self.need)

    def _all_wanted_converged(self) -> bool:
        for end, indices in self.wanted.items():
            if indices.size < self.need[end]:
                return False
            if np.any(self.estimates[indices] > self.tol[indices]):
                return False
        return True

    # -- restarts -----------------------------------------------------------------------------

    def _restart(self) -> None:
        """Lock the converged wanted pairs and restart from the best Ritz vectors."""
        self.n_restarts += 1
        locked = self._lock()
        p_new = self.p + locked.size
        remaining = np.setdiff1d(np.arange(self.m), locked)
        m_next = min(self.ncv, self.n) - p_new
        # ARPACK's count of kept vectors (k, plus one per converged pair up to half the free
        # slots; half the basis for k = 1), plus a few the convergence model may add.
        converged = sum(
            int(np.count_nonzero(self.estimates[indices] <= self.tol[indices]))
            for indices in self.wanted.values()
        )
        total = self.k + min(self.p + converged, (self.ncv - self.k) // 2)
        if total == 1:
            total = self.ncv // 2 if self.ncv >= 6 else 2
        limit = max(total - p_new, sum(self.need.values())) + _EXTRA_KEPT
        keep = remaining[self._kept(self.theta[remaining], m_next, limit)]
        self.locked_values.extend(self.theta[locked].tolist())
        # One product forms the new locked vectors and the kept Ritz vectors, and one more
        # their products with A: W S for Q S.
        new_rows, new_products = self._combine(self.S[:, np.concatenate([locked, keep])])
        parts = [self.basis[: self.p, :], new_rows, self.xp.reshape(self.next_q, (1, -1))]
        self.basis = self.xp.concat(parts, axis=0)
        # the product of next_q is computed by the first step of the next cycle
        self.products = self.xp.concat([self.products[: self.p, :], new_products], axis=0)
        kept = keep.size
        C = np.zeros((self.k, self.ncv))
        # the new locked vectors are Ritz vectors: not coupled to the kept ones through H
        C[: self.p, :kept] = self.C[: self.p, : self.m] @ self.S[:, keep]
        self.C = C
        self.p = p_new
        self.H = np.zeros((self.ncv, self.ncv))
        self.H[np.arange(kept), np.arange(kept)] = self.theta[keep]
        couplings = self.beta * self.S[self.m - 1, keep]
        self.H[kept, :kept] = couplings
        self.H[:kept, kept] = couplings
        self.m = kept + 1

    def _lock(self) -> np.ndarray:
        """Return the indices of the wanted Ritz pairs to lock, and count them as found.

        A pair is locked only well below the smallest tolerance of the wanted pairs: its
        dropped coupling then cannot hold the others above their tolerance (the estimates
        include it, through ``C``, so the test stays honest either way).
        """
        everything = np.concatenate(list(self.wanted.values()))
        lock_level = _LOCK_FACTOR * float(np.min(self.tol[everything]))
        locked = []
        for end, indices in self.wanted.items():
            done = indices[self.estimates[indices] <= np.minimum(self.tol[indices], lock_level)]
            self.need[end] -= done.size
            locked.extend(done.tolist())
        return np.asarray(locked, dtype=int)

    def _combine(self, S: np.ndarray) -> tuple[Any, Any]:
        """Return ``(Q S)^T`` and ``(W S)^T`` for the active rows ``Q`` and products ``W``."""
        active = slice(self.p, self.p + self.m)
        coefficients = self.xp.asarray(S.T, dtype=self.operator.dtype, device=self.operator.device)
        return coefficients @ self.basis[active, :], coefficients @ self.products[active, :]

    def _kept(self, theta: np.ndarray, m_next: int, limit: int) -> np.ndarray:
        """Return the indices of the Ritz values to keep at a restart.

        The wanted ones, and next to them as many neighbours as maximise the predicted
        convergence of the next cycle: with ``l`` vectors kept, ``m_next - l`` Lanczos steps
        act on the interval ``[a, b]`` of the Ritz values not kept, and the innermost wanted
        value ``t`` converges like ``T_{m_next - l}(gamma)^-1`` with
        ``gamma = 1 + 2 dist(t, [a, b]) / (b - a)``, so ``l`` maximises
        ``(m_next - l) acosh(gamma)`` (the heuristic of Yamazaki et al. for thick restarts).
        """
        order = np.argsort(theta, kind="stable")
        r = theta[order]
        size = r.size
        rank = np.empty(size, dtype=int)
        rank[order] = np.arange(size)
        wanted = np.zeros(size, dtype=bool)
        for indices in select_wanted(theta, self.need).values():
            wanted[rank[indices]] = True
        # the wanted values are the c_low lowest and the c_high highest ones
        c_low = size if wanted.all() else int(np.argmin(wanted))
        c_high = int(np.count_nonzero(wanted)) - c_low
        limit = min(limit, m_next - 1, size - 2)
        best, choice = -1.0, (c_low, c_high)
        for l_low in range(c_low, size) if c_low else (0,):
            for l_high in range(c_high, size) if c_high else (0,):
                kept = l_low + l_high
                if kept > limit:
                    break
                a, b = r[l_low], r[size - 1 - l_high]
                if b <= a:
                    break
                rate = math.inf
                if c_low:
                    rate = min(rate, math.acosh(1.0 + 2.0 * (a - r[c_low - 1]) / (b - a)))
                if c_high:
                    rate = min(rate, math.acosh(1.0 + 2.0 * (r[size - c_high] - b) / (b - a)))
                if (m_next - kept) * rate > best:
                    best, choice = (m_next - kept) * rate, (l_low, l_high)
        l_low, l_high = choice
        return np.concatenate([order[:l_low], order[size - l_high :]]).astype(int)

    # -- the result ---------------------------------------------------------------------------

    def _wanted_pairs(self, stop: str) -> RitzPairs:
        """Return the locked and the wanted active Ritz pairs, with their residual norms.

        The residual of ``v = Q s`` is ``W s - theta v`` with the stored products ``W``:
        true up to the rounding of the products, and no matvec.
        """
        xp = self.xp
        indices = np.concatenate(list(self.wanted.values()))
        rows, product_rows = self._combine(self.S[:, indices])
        V = xp.matrix_transpose(xp.concat([self.basis[: self.p, :], rows], axis=0))
        AV = xp.matrix_transpose(xp.concat([self.products[: self.p, :], product_rows], axis=0))
        values = np.concatenate([np.asarray(self.locked_values), self.theta[indices]])
        lam = xp.asarray(values, dtype=self.operator.dtype, device=self.operator.device)
        norms = np.asarray(host_values(self.space.norm(AV - V * lam)), dtype=np.float64)
        return RitzPairs(values, V, norms, self.anorm, stop, self.n_matvec, self.n_restarts)
