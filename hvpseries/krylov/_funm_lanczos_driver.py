"""The per-column driver of :func:`hvpseries.krylov.funm_lanczos`: checkpoints and stopping.

``f(A) b ~ ||b|| Q_m f(T_m) e_1``; :class:`_FunmLanczos` runs the Lanczos steps for one column,
evaluates ``f(T_m) e_1`` at checkpoints, estimates the error from consecutive checkpoint
iterates, bounds what the Krylov space cannot see, and forms the returned vector (from the
stored basis, or by a second pass of the recurrence). docs/krylov.rst has the measurements.

*Host and device.* The vectors stay on the operator's device; ``T`` (tiny) lives on the host in
float64 and ``f(T) e_1 = V f(Lambda) V^T e_1`` is computed with
:func:`scipy.linalg.eigh_tridiagonal`. That ``O(m^2)`` host work is done only at checkpoints:
``m = 8`` and then geometrically growing by at most 10%; once the convergence rate is known
the next checkpoint is placed where the extrapolated error meets the tolerance (but at least 3%
further). A function object with a method ``tridiagonal_apply(alpha, off, *, tolerance)`` (as
:func:`hvpseries.abs_inv` passes for ``1/(|t| + d)`` and ``(t^2 + d)^{-1/2}``) may compute
``f(T) e_1`` itself, to relative accuracy ``tolerance = 1e-3 rtol`` at the checkpoints and
``1e-14`` for the vector returned, in ``O(m)`` work per quadrature node; it is used from 128
steps on, and where it returns ``None`` the eigendecomposition is used.

*Error estimate.* With ``y_c`` the coefficient vector at checkpoint ``c`` (padded with zeros),
``D = ||y_c - y_{c'}||`` between consecutive checkpoints equals ``||x_c - x_{c'}||`` for an
orthonormal basis. Assuming linear convergence ``err(m) ~ C rho^m``,
``D ~ err(c') (1 - rho^d)`` with ``d = c - c'``, so ``err(c) ~ D rho^d / (1 - rho^d)``; ``rho``
is fitted from the last two differences. The estimate used is ``D max(0.3, rho^d / (1 - rho^d))``
(at most 3.3 times below the last difference, and only once two consecutive contractions were
seen); convergence is declared only once a contraction (``rho < 1``) has been observed. This is
an estimate, not a bound: on indefinite problems the convergence for ``1/|t|`` has plateaus
(Ritz values near zero), where two iterates can agree while both are far from the answer. If
the iterates stop changing at the rounding level above the tolerance, the status is
``STAGNATED``.

*Unresolved spectrum.* Agreeing iterates cannot see eigenvalues the Krylov space has not found,
and past a kink of ``f`` the Lanczos polynomial ``p`` follows the analytic continuation of
``f``, not ``f``. For each kink (declared by ``f.kinks``, or located by
:func:`~hvpseries.krylov._analyticity.analyticity` when ``f`` declares none), a bound from
the Chebyshev-Markov-Stieltjes inequality (a distribution with the ``2m`` moments Lanczos
knows has at most ``lambda_m(t) = 1 / sum_k p_k(t)^2`` of mass beyond ``t``) is added to the
estimate: rigorous for the spectrum beyond a kink outside the Ritz values, and for one hidden
eigenvalue in the Ritz gap around a kink inside them. An operator tagged ``psd=True`` has
nothing below 0. If the iterates agree but this bound does not meet the tolerance within twice
the steps (at least 32 more), and has not halved in that time, the status is ``UNVERIFIED``
(while it keeps halving, the steps go on, up to ``maxiter``). A ``maxiter`` given by the caller
removes this deadline: the steps go on until a certificate or ``maxiter``.

*Rounding.* Lanczos knows each Ritz value only to about ``delta = eps max|theta|``, so
``f(A) b`` is computed to about
``||b|| (sum_i s_i^2 max|f(theta_i +- delta) - f(theta_i)|^2)^(1/2)`` at best, with ``s_i``
the first components of ``T``'s eigenvectors (only the eigencomponents ``b`` excites
count). Once the iterates agree the estimate is at least that floor, and where the floor
does not meet the tolerance the status is ``STAGNATED``. The floor scales with ``f`` and
not with ``t``: it is the same for ``A`` and ``1e4 A``.

*Breakdown.* A breakdown (the Krylov space became invariant) gives the exact answer up to
rounding; the estimate is then ``2 m`` times the rounding floor.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg

from .._core._array_api import device, epsilon
from .._core._in_place import add_scaled_
from .._core._result import Status
from .._operators._base import LinearOperator
from ._analyticity import Analyticity, analyticity
from ._lanczos import LanczosProcess, _tridiagonal_eigh
from ._unresolved_spectrum import unresolved_error_bound

# Checkpoints (where f(T) e_1 is evaluated) grow geometrically by this factor at most; near the
# predicted end they are placed where the extrapolated error meets the tolerance. The error
# estimate lags by one checkpoint interval and the endgame often converges superlinearly, so
# the interval bounds the overshoot in matvecs: 25% growth cost up to 1.39x the matvecs of an
# oracle-stopped Lanczos (2D Helmholtz, 1e4 unknowns), 10% costs at most 1.13x on the
# benchmark problems, and the extra checkpoints' host work was repaid by the saved steps.
_GROWTH = 1.1
_NEAR_GROWTH = 1.05
_FIRST_CHECKPOINT = 8
# The extrapolated estimate is never below this fraction of the last difference (0.1 let the
# true error exceed ten times the estimate on indefinite spectra with plateaus; 0.3 costs about
# 4% more matvecs).
_SMALLEST_FACTOR = 0.3
# A function object may offer ``tridiagonal_apply(alpha, off, *, tolerance)`` computing f(T) e_1
# in O(m) work (see _tridiagonal_functions.py); it is used from this many Lanczos steps on (below,
# the eigendecomposition is as cheap and exact) and asked for this fraction of rtol, so that its
# error stays far below the differences the error estimate is built from.
_FAST_MIN_STEPS = 128
_FAST_ACCURACY = 1e-3
# The returned vector is evaluated once more at this accuracy (rounding level, as accurate as
# the eigendecomposition), which costs about one checkpoint.
_FINAL_ACCURACY = 1e-14
# When the iterates agree but the bound on unresolved spectrum beyond a kink of f does not meet
# the tolerance, Lanczos goes on to twice the steps (at least this many more) for the bound;
# then the status is UNVERIFIED.
_CERTIFICATE_MIN_STEPS = 32
# Differences below this many eps ||y|| mean the iterates stopped changing (flat).
_FLAT_LEVEL = 10.0
# Differences between agreeing iterates below this many eps ||y|| are rounding noise.
_NOISE_LEVEL = 1000.0


class BasisOverBudget(Exception):
    """The stored basis reached the vectors that memory allows before the column finished."""

    def __init__(self, n_matvec: int) -> None:
        super().__init__(n_matvec)
        self.n_matvec = n_matvec


class _ColumnOutcome:
    __slots__ = (
        "estimate",
        "n_checkpoints",
        "n_matvec",
        "n_reorthogonalizations",
        "n_steps",
        "status",
        "x",
    )

    def __init__(self, **values: Any) -> None:
        for name, value in values.items():
            setattr(self, name, value)


def f_tridiagonal_e1(
    f: Callable[[np.ndarray], np.ndarray], alpha: np.ndarray, off: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``f(T) e_1`` and the eigenvalues of the symmetric tridiagonal ``T`` (host)."""
    eigenvalues, vectors = _tridiagonal_eigh(alpha, off)
    values = np.asarray(f(eigenvalues), dtype=np.float64)  # f is checked for its shape
    # A non-finite value of f (a Ritz value at a singularity) is reported by the caller.
    with np.errstate(invalid="ignore", over="ignore"):
        return vectors @ (values * vectors[0, :]), eigenvalues


class _FunmLanczos:
    """The per-column driver: Lanczos steps, checkpoints, error estimate, final vector."""

    def __init__(
        self,
        operator: LinearOperator,
        f: Callable[[np.ndarray], np.ndarray],
        rtol: float,
        atol: float,
        maxiter: int,
        reorthogonalize: str,
        memory: str,
        callback: Callable[[Any], Any] | None,
        progress: Callable[[int, float], Any] | None,
        *,
        wait_to_maxiter: bool = False,
        most_stored: int | None = None,
    ) -> None:
        self.operator = operator
        self.f = f
        self.rtol = rtol
        self.atol = atol
        self.maxiter = maxiter
        # A maxiter the caller chose is what they will spend on a certificate: no deadline.
        self.wait_to_maxiter = wait_to_maxiter
        # The most basis vectors memory allows ("store" only): past them, BasisOverBudget.
        self.most_stored = most_stored
        self.reorthogonalize = reorthogonalize
        self.memory = memory
        self.callback = callback
        self.progress = progress
        self.eps = epsilon(operator.xp, operator.dtype)
        self.fast_apply = getattr(f, "tridiagonal_apply", None)
        self.kinks = _declared_kinks(f)
        self.spectrum_lower = 0.0 if operator.psd else -math.inf
        # For an f that declares no kinks: what analyticity found, on [-reach, reach].
        self._analysis: Analyticity | None = None
        self._analysed_reach = 0.0

    def solve(self, b: Any, norm_b: float) -> _ColumnOutcome:
        """Run one column ``b`` of norm ``norm_b`` to its stopping test."""
        xp = self.operator.xp
        if norm_b == 0.0:
            return _ColumnOutcome(
                x=xp.zeros_like(b),
                status=Status.SUCCESS,
                n_matvec=0,
                n_steps=0,
                estimate=0.0,
                n_checkpoints=0,
                n_reorthogonalizations=0,
            )
        store = self.memory == "store"
        process = LanczosProcess(
            self.operator, b / norm_b, reorthogonalize=self.reorthogonalize, store=store
        )
        y, estimate, status, checkpoints = self._iterate(process, norm_b)
        y = self._refine(process, y, norm_b)
        m = y.size
        n_matvec = process.n_matvec
        if not np.all(np.isfinite(y)):
            # f is not finite at a Ritz value (a singularity inside the spectrum's hull):
            # there is no approximation to combine.
            x = xp.full(b.shape, math.nan, dtype=self.operator.dtype, device=device(b))
            status = Status.NONFINITE
        elif store:
            assert process.basis is not None
            x = process.basis.combine(y, self.operator.dtype, self.operator.device)
        else:
            x, extra = self._second_pass(b / norm_b, y)
            n_matvec += extra
        if status.usable and not self.operator.vector_space.all_finite(x):
            status = Status.NONFINITE
        return _ColumnOutcome(
            x=x,
            status=status,
            n_matvec=n_matvec,
            n_steps=m,
            estimate=estimate,
            n_checkpoints=checkpoints,
            n_reorthogonalizations=process.n_reorthogonalizations,
        )

    def _iterate(self, process: LanczosProcess, norm_b: float) -> tuple:
        target = min(_FIRST_CHECKPOINT, self.maxiter)
        previous: np.ndarray | None = None
        previous_m = 0
        differences: list[tuple[int, float]] = []  # (steps between checkpoints, ||y_c - y_c'||)
        checkpoints = 0
        settled_at: int | None = None  # steps when the iterates agreed but the bound did not
        bound_at_settle = math.inf  # the bound then: waiting goes on while it keeps halving
        while True:
            while process.num_steps < target and process.step():
                pass
            m = process.num_steps
            alpha = np.asarray(process.alpha)
            off = np.asarray(process.beta[: m - 1])
            checkpoints += 1
            if not (np.all(np.isfinite(alpha)) and np.all(np.isfinite(off))):
                # The operator returned a non-finite product: T is not a tridiagonal to
                # decompose, and there is no approximation to return.
                self._report(process, math.inf, None)
                return np.full(m, math.nan), math.inf, Status.NONFINITE, checkpoints
            y, ritz = self._f_e1(alpha, off)
            y = norm_b * y
            finite = bool(np.all(np.isfinite(y)))
            # scipy's norm is BLAS nrm2: no overflow for the coefficients of a tiny operator
            y_norm = float(scipy.linalg.norm(y)) if finite else math.inf
            tolerance = max(self.rtol * y_norm, self.atol)
            if process.broke_down and finite and not math.isfinite(process.beta[-1]):
                return y, math.inf, Status.NONFINITE, checkpoints
            if process.broke_down and finite:
                # Exact up to rounding: m steps' rounding errors, added up linearly (with a
                # semi-orthogonal basis they are correlated: errors of 1-6 eps m kappa were
                # measured at m = n for f = 1/|t|), each about the rounding floor.
                if ritz is None:
                    ritz = _tridiagonal_eigvals(alpha, off)
                factor = 2.0 * m * norm_b
                rounding = factor * self._rounding_error(alpha, off, ritz, tolerance / factor)
                residual = process.breakdown_residual / max(process.anorm, 1e-300)
                estimate = max(rounding, residual * y_norm)
                status = Status.SUCCESS if estimate <= tolerance else Status.STAGNATED
                self._report(process, estimate, y)
                return y, estimate, status, checkpoints
            estimate, rate, unresolved = math.inf, None, math.inf
            if finite and previous is not None:
                difference = float(
                    scipy.linalg.norm(y - np.concatenate([previous, np.zeros(m - previous_m)]))
                )
                differences.append((m - previous_m, difference))
                estimate, rate = _extrapolated_error(differences)
            settled = rate is not None and rate < 1.0 and estimate <= tolerance
            # rounding adds up over the first steps; capped, so slow progress is never flat
            flat_level = _FLAT_LEVEL * min(math.sqrt(m), 4.0) * self.eps * y_norm
            flat = bool(differences) and finite and differences[-1][1] <= flat_level
            # Once the iterates have agreed, differences at the rounding level (just above the
            # flat test's, in either direction at random) are noise, not new spectrum: they
            # keep the count of steps waiting for the bound, but never certify.
            noise = (
                settled_at is not None
                and finite
                and differences[-1][1] <= _NOISE_LEVEL * self.eps * y_norm
            )
            agree = settled or flat or noise
            if not agree:
                settled_at = None  # the iterates move again: the Krylov space found more
            else:
                # The iterates agree; the spectrum beyond a kink of f that the Krylov space has
                # not resolved is bounded separately (0 when there is none), and rounding
                # alone limits the accuracy to the floor.
                if ritz is None:
                    ritz = _tridiagonal_eigvals(alpha, off)
                unresolved = norm_b * self._unresolved_bound(process, alpha, y / norm_b, ritz)
                known = max(estimate + unresolved, tolerance)
                rounding = norm_b * self._rounding_error(alpha, off, ritz, known / norm_b)
                estimate = max(estimate + unresolved, rounding)
                if rounding > tolerance and unresolved <= tolerance:
                    # Converged as far as this precision allows, above the tolerance.
                    self._report(process, estimate, y)
                    return y, estimate, Status.STAGNATED, checkpoints
                if unresolved > tolerance and settled_at is None:
                    settled_at, bound_at_settle = m, unresolved
            self._report(process, estimate, y if finite else None)
            if (settled or flat) and estimate <= tolerance:
                return y, estimate, Status.SUCCESS, checkpoints
            deadline = (
                settled_at is not None
                and not self.wait_to_maxiter
                and m >= max(2 * settled_at, settled_at + _CERTIFICATE_MIN_STEPS)
            )
            if deadline and math.isfinite(unresolved) and unresolved <= 0.5 * bound_at_settle:
                # The bound is converging: another doubling of the steps may certify.
                settled_at, bound_at_settle, deadline = m, unresolved, False
            if settled_at is not None and (deadline or m >= self.maxiter or process.broke_down):
                return y, estimate, Status.UNVERIFIED, checkpoints
            if flat and settled_at is None:
                # The iterates no longer change above rounding: converged as far as this
                # precision allows.
                return y, estimate, Status.STAGNATED, checkpoints
            if m >= self.maxiter or process.broke_down:
                status = Status.MAX_ITERATIONS if finite else Status.NONFINITE
                return y, estimate, status, checkpoints
            if finite:
                previous, previous_m = y, m
            if settled_at is not None:
                rate = None  # the bound, not the differences, decides from here on
            target = min(self._next_checkpoint(m, estimate, rate, tolerance), self.maxiter)
            if self.most_stored is not None:
                if m >= self.most_stored:
                    raise BasisOverBudget(process.n_matvec)
                target = min(target, self.most_stored)

    def _rounding_error(
        self, alpha: np.ndarray, off: np.ndarray, ritz: np.ndarray, below: float
    ) -> float:
        # The error of f(T) e_1 that rounding alone causes: Lanczos knows each Ritz value to
        # about delta = eps max|theta| (Paige), and moving theta_i by delta changes
        # f(T) e_1 = sum_i s_i f(theta_i) v_i by (sum_i s_i^2 change_i^2)^(1/2), with s_i the
        # first components of T's eigenvectors. Dimensionless in t (scaling A scales delta),
        # and only eigencomponents b excites count. When the cheap bound max_i change_i
        # (the s_i^2 sum to 1) does not exceed ``below``, that bound is returned.
        delta = self.eps * float(np.max(np.abs(ritz)))
        change = self._change_within(ritz, delta)
        bound = float(np.max(change))
        if not bound > below:
            return bound
        # Components changing by less than below / 10 add at most below / 10 together.
        significant = np.flatnonzero(change > 0.1 * below)
        first, last = int(significant[0]), int(significant[-1])
        weights = _first_components(alpha, off, first, last) ** 2
        part = change[first : last + 1]
        with np.errstate(over="ignore", invalid="ignore"):
            total = float(np.sum(weights * part * part))
        return math.sqrt(total + (0.1 * below) ** 2) if math.isfinite(total) else math.inf

    def _change_within(self, ritz: np.ndarray, delta: float) -> np.ndarray:
        # max |f(theta +- delta) - f(theta)| per Ritz value; a side where f is not defined
        # (NaN, or f raises there) says nothing, an infinite one makes the change infinite.
        with np.errstate(all="ignore"):
            values = np.asarray(self.f(ritz), dtype=np.float64)
        change = np.zeros_like(values)
        for shifted in (ritz - delta, ritz + delta):
            try:
                with np.errstate(all="ignore"):
                    moved = np.asarray(self.f(shifted), dtype=np.float64)
            except Exception:  # f is the user's: raising marks the edge of its domain
                continue
            with np.errstate(invalid="ignore"):
                change = np.fmax(change, np.abs(moved - values))
        return change

    def _unresolved_bound(
        self,
        process: LanczosProcess,
        alpha: np.ndarray,
        coefficients: np.ndarray,
        ritz: np.ndarray | None,
    ) -> float:
        # The bound on the error from unresolved spectrum beyond a kink of f, for unit ||b||.
        if self.kinks == ():
            return 0.0
        m = alpha.size
        beta = np.asarray(process.beta[:m], dtype=np.float64)
        if ritz is None:
            ritz = _tridiagonal_eigvals(alpha, beta[: m - 1])
        ritz = np.sort(ritz)
        kinks, lower, upper = self.kinks, self.spectrum_lower, math.inf
        if kinks is None:
            analysis = self._analyticity(ritz, float(beta[-1]))
            if analysis is None:
                return math.inf  # f is too rough to locate its kinks: nothing is certified
            kinks = analysis.kinks
            # f is finite on the spectrum: it lies within the domain around the Ritz values.
            lower = max([lower, *(s for s in analysis.domain_starts if s <= ritz[0])])
            upper = min([upper, *(e for e in analysis.domain_ends if e >= ritz[-1])])
        return unresolved_error_bound(
            alpha,
            beta,
            self.f,
            coefficients,
            ritz,
            kinks,
            spectrum_lower=lower,
            spectrum_upper=upper,
        )

    def _analyticity(self, ritz: np.ndarray, beta_m: float) -> Analyticity | None:
        # The kinks of an f that declares none, located on twice the reach of the bound (so
        # that the search is repeated only when the Ritz values grow by more than 2x).
        reach = 10.0 * float(np.max(np.abs(ritz))) + 2.0 * beta_m
        if self._analysed_reach < reach:
            self._analysed_reach = 2.0 * reach if reach > 0 else 1.0
            self._analysis = analyticity(self.f, -self._analysed_reach, self._analysed_reach)
        return self._analysis

    def _f_e1(self, alpha: np.ndarray, off: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        # f(T) e_1 and, when they were computed, the Ritz values.
        if self.fast_apply is not None and alpha.size >= _FAST_MIN_STEPS and self.rtol > 0:
            y = self.fast_apply(alpha, off, tolerance=_FAST_ACCURACY * self.rtol)
            if y is not None:
                return np.asarray(y, dtype=np.float64), None
        return f_tridiagonal_e1(self.f, alpha, off)

    def _refine(self, process: LanczosProcess, y: np.ndarray, norm_b: float) -> np.ndarray:
        # The checkpoints ask the fast path for 1e-3 rtol, enough for the error estimate; the
        # vector returned gets f(T) e_1 to rounding level, as the eigendecomposition would.
        m = y.size
        if self.fast_apply is None or m < _FAST_MIN_STEPS or process.num_steps != m:
            return y
        alpha = np.asarray(process.alpha)
        refined = self.fast_apply(
            alpha, np.asarray(process.beta[: m - 1]), tolerance=_FINAL_ACCURACY
        )
        if refined is None or not np.all(np.isfinite(refined)):
            return y
        return norm_b * np.asarray(refined, dtype=np.float64)

    def _report(self, process: LanczosProcess, estimate: float, y: np.ndarray | None) -> None:
        if self.progress is not None:
            self.progress(process.n_matvec, estimate)
        if self.callback is not None and y is not None and process.basis is not None:
            operator = self.operator
            self.callback(process.basis.combine(y, operator.dtype, operator.device))

    @staticmethod
    def _next_checkpoint(m: int, estimate: float, rate: float | None, tolerance: float) -> int:
        # Far from the tolerance, grow by 10%; within four digits of it, by 5% (the endgame
        # of f(A) b often converges superlinearly, faster than any fitted rate predicts).
        growth = _GROWTH if not estimate <= 1e4 * tolerance else _NEAR_GROWTH
        largest = max(m + 4, math.ceil(growth * m))
        if rate is None or not rate < 1.0 or not math.isfinite(estimate) or tolerance <= 0:
            return largest
        smallest = m + max(2, math.ceil(0.03 * m))
        needed = math.log(tolerance / estimate) / math.log(rate) if estimate > tolerance else 0
        return int(min(max(m + math.ceil(needed), smallest), largest))

    def _second_pass(self, q0: Any, y: np.ndarray) -> tuple[Any, int]:
        # Rerun the identical recurrence (same operations, so the same vectors) and
        # accumulate x = sum_j y_j q_j without storing the basis.
        process = LanczosProcess(self.operator, q0, reorthogonalize="none", store=False)
        x = q0 * float(y[0])  # a new array, updated in place from here
        for j in range(1, y.size):
            if not process.step():
                break
            x = add_scaled_(x, process.q, float(y[j]))
        return x, process.n_matvec


# NumPy's functions with a kink at 0, recognised without a ``kinks`` attribute.
_KNOWN_KINKS = {np.sign: (0.0,), np.abs: (0.0,)}


def _declared_kinks(f: Callable[[np.ndarray], np.ndarray]) -> tuple[float, ...] | None:
    """Return where ``f`` is not analytic: its ``kinks`` attribute (None: not declared)."""
    f = getattr(f, "__wrapped__", f)  # the caller's own function
    known = _KNOWN_KINKS.get(f) if isinstance(f, np.ufunc) else None
    kinks = known if known is not None else getattr(f, "kinks", None)
    if kinks is None:
        return None
    try:
        values = tuple(float(c) for c in kinks)
    except (TypeError, ValueError):
        message = f"f.kinks must be a sequence of real numbers, got {kinks!r}"
        raise TypeError(message) from None
    if not all(math.isfinite(c) for c in values):
        message = f"f.kinks must be finite, got {kinks!r}"
        raise ValueError(message)
    return values


def _tridiagonal_eigvals(alpha: np.ndarray, off: np.ndarray) -> np.ndarray:
    # Host-side on purpose (T is small): the eigenvalues alone, without the vectors.
    from scipy.linalg import eigvalsh_tridiagonal

    return alpha.copy() if alpha.size == 1 else eigvalsh_tridiagonal(alpha, off)


def _first_components(alpha: np.ndarray, off: np.ndarray, first: int, last: int) -> np.ndarray:
    # The first components of the eigenvectors first..last (ascending) of T, host-side.
    from scipy.linalg import eigh_tridiagonal

    if alpha.size == 1:
        return np.ones(1)
    _, vectors = eigh_tridiagonal(alpha, off, select="i", select_range=(first, last))
    return vectors[0, :]


def _extrapolated_error(differences: list[tuple[int, float]]) -> tuple[float, float | None]:
    """Estimate the current error from the last differences of checkpoint iterates.

    Returns ``(estimate, rho)`` with ``rho`` the fitted per-step contraction factor, or
    ``None`` when fewer than two differences are known.
    """
    steps, last = differences[-1]
    if len(differences) < 2:
        return last, None
    steps_before, before = differences[-2]
    if before <= 0.0 or last <= 0.0:
        return last, (0.0 if last == 0.0 else None)
    # Model: difference_i = E rho^{c_{i-1}} (1 - rho^{d_i}); solve the ratio for rho by a
    # few fixed-point sweeps (a scalar equation, cheap).
    ratio = last / before
    if ratio >= 1.0:
        return last, ratio ** (1.0 / steps_before)
    if len(differences) < 3 or differences[-3][1] <= before:
        # No steady contraction yet (two decreasing steps in a row are required): a rate
        # fitted across a jump would be meaningless, so use the plain difference.
        return last, None
    rho = ratio ** (1.0 / steps_before)
    for _ in range(20):
        correction = (1.0 - rho**steps_before) / (1.0 - rho**steps)
        rho_new = min((ratio * correction) ** (1.0 / steps_before), 1.0 - 1e-15)
        if abs(rho_new - rho) <= 1e-14:
            break
        rho = rho_new
    # Convergence with plateaus (a discontinuous-Galerkin diffusion operator, inv_sqrt) fits a
    # fast rate to the last pair while the error stalls: extrapolate with the slowest per-step
    # contraction of the last few pairs, and not at all if one of them did not contract.
    slowest = max(rho, *_recent_contractions(differences))
    if slowest >= 1.0:
        return last, None
    # The extrapolation may lower the estimate below the last difference by a bounded factor: a
    # guard against a rate fitted to a lucky pair of differences.
    factor = slowest**steps / (1.0 - slowest**steps)
    return last * max(_SMALLEST_FACTOR, factor), rho


def _recent_contractions(differences: list[tuple[int, float]]) -> list[float]:
    """Per-step contraction factors of the last (up to) three pairs of differences."""
    factors = []
    for (steps, before), (_, after) in itertools.pairwise(differences[-4:]):
        if before > 0.0 and after > 0.0:
            factors.append((after / before) ** (1.0 / steps))
    return factors
