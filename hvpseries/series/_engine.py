"""The loop shared by every series solver: terms, partial sums, estimates, acceleration.

Every solver of :mod:`hvpseries.series` computes ``prefactor * sum_n c_n v_n`` with
``v_0 = b`` and ``v_n = alpha v_{n-1} - (1/V) M v_{n-1}`` where ``M`` is ``A^2`` (two matvecs)
or ``A`` (one matvec); the front ends choose ``M``, ``V``, ``alpha`` and the coefficients.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from .._core._array_api import add_scaled, epsilon, host_values
from .._core._result import SolveResult, Status
from .._core._vector_space import VectorSpace
from ..acceleration._levin import levin_window
from ..acceleration._sequence import finish
from ..acceleration._wynn import epsilon_table
from ._coefficients import CoefficientStream, generating_function

__all__ = ["ACCELERATIONS", "SeriesSetup", "check_acceleration", "run_series", "trivial_rhs"]

ACCELERATIONS = ("wynn", "wynn-sablonniere", "levin", "aitken", "tail", None)

#: Default cap on the number of terms when a tolerance is given without maxiter or num_terms.
DEFAULT_MAXITER = 1000
#: Default tolerance when neither num_terms nor rtol is given.
DEFAULT_RTOL = 1e-6


@dataclass
class SeriesSetup:
    """What a front end hands to :func:`run_series`."""

    apply: Callable[[Any], Any]  # v -> M v (M = A^2 or A)
    matvecs_per_apply: int
    scale: float  # V
    shift: float  # alpha = 1 - shift / V
    stream: CoefficientStream
    prefactor: float
    n_matvec_before: int = 0  # spent on the scale (Lanczos) before the loop
    first_product: Any = None  # M b if already computed (lower-bound scale)
    spd_method: bool = False  # growth with x > 1 means a negative eigenvalue: INDEFINITE
    info: dict[str, Any] = field(default_factory=dict)
    space: VectorSpace | None = None  # the operator's vector space (local if None)


def check_acceleration(acceleration: Any, order: Any) -> None:
    """Validate ``acceleration`` and ``order``."""
    from ..acceleration._wynn import check_order

    if acceleration not in ACCELERATIONS:
        message = (
            "acceleration must be 'wynn', 'wynn-sablonniere', 'levin', 'aitken', 'tail' or None, "
            f"got {acceleration!r}"
        )
        raise ValueError(message)
    check_order(order)
    if acceleration == "aitken" and order != 1:
        message = f"acceleration='aitken' has order 1 only, got order={order!r}"
        raise ValueError(message)


def trivial_rhs(b: Any, space: VectorSpace | None = None) -> bool:
    """Whether ``b`` is all zeros or has a non-finite entry (answered without any matvec)."""
    if space is None:
        space = VectorSpace(_namespace_of(b))
    norms = _norms(space, b)
    return not np.all(np.isfinite(norms)) or not np.any(norms)


def _host(xp: ModuleType, x: Any) -> np.ndarray:
    """Small per-column quantities (norms) as a float64 host array, in one transfer."""
    return host_values(x)


def _norms(space: VectorSpace, x: Any) -> np.ndarray:
    return _host(space.xp, space.norm(x))


def _report(values: np.ndarray, block: bool) -> Any:
    return values.copy() if block else float(values[0])


class _Accelerator:
    """Applies the chosen accelerator to the latest partial sums (and terms, for ``"tail"``)."""

    def __init__(
        self, space: VectorSpace, kind: str, order: int, stream: CoefficientStream
    ) -> None:
        self.space = space
        self.xp = space.xp
        self.kind = kind
        self.order = order
        self.stream = stream
        self.width = 2 * order + 1
        self.minimum_terms = 2 if kind == "tail" else 2 * order + 1

    def __call__(
        self,
        sums: list[Any],
        n: int,
        v: Any,
        v_previous: Any,
        norms: np.ndarray,
        norms_previous: np.ndarray,
    ) -> Any:
        """Estimate the limit after term ``n``; ``sums`` ends with ``S_n`` (and starts earlier).

        ``v`` and ``v_previous`` are ``v_n`` and ``v_{n-1}``, ``norms`` and ``norms_previous``
        their (column) norms.
        """
        xp = self.xp
        if self.kind == "tail":
            return self._tail(sums[-1], n, v, v_previous)
        if self.kind in ("wynn", "wynn-sablonniere") and self.order == 1:
            return self._wynn_first_order(sums, n, v, v_previous, norms, norms_previous)
        window = sums[-self.width :]
        if self.kind == "levin":
            terms = [sums[j + 1] - sums[j] for j in range(len(sums) - 1)][-self.width :]
            # The t transform: the remainder estimate is the last term.
            estimate, bad = levin_window(xp, window, terms, n - 2 * self.order, "t")
        elif self.kind == "aitken":
            first, middle, last = window
            step = last - middle
            curvature = step - (middle - first)
            bad = curvature == 0
            estimate = last - step * step / xp.where(bad, 1.0, curvature)
        else:
            modifier = "sablonniere" if self.kind == "wynn-sablonniere" else None
            estimate, bad = epsilon_table(
                xp, window, self.order, modifier=modifier, space=self.space
            )
        return finish(xp, estimate, window[-1], bad, False, self.space)

    def _wynn_first_order(
        self,
        sums: list[Any],
        n: int,
        v: Any,
        v_previous: Any,
        norms: np.ndarray,
        norms_previous: np.ndarray,
    ) -> Any:
        """Order-1 vector epsilon (Samelson inverse) in closed form from the last two terms.

        With the terms ``d1 = c_{n-1} v_{n-1}`` and ``d2 = c_n v_n`` (the differences of the
        window ``S_{n-2}, S_{n-1}, S_n``), ``e = S_{n-1} + w ((d2)^-1 - (d1)^-1)^-1`` and
        ``u^-1 = conj(u) / |u|^2`` simplify to
        ``e = S_{n-1} + w (|d1|^2 d2 - |d2|^2 d1) / |d1 - d2|^2`` (``w = 1``, or 2 for
        Sablonniere's modifier): one new vector ``d1 - d2`` and its norm, the rest from the
        known norms of the terms: about half the memory traffic of the general table
        (:func:`epsilon_table`), and no differences of partial sums, which cost the table about
        ``|S| / |d1 - d2|`` ulps. A zero ``d1``, ``d2`` or ``d1 - d2`` (no defined inverse), or
        a non-finite correction, returns ``S_n``, as the table does.
        """
        xp, space = self.xp, self.space
        weight = 2.0 if self.kind == "wynn-sablonniere" else 1.0
        coefficient, coefficient_previous = self.stream[n], self.stream[n - 1]
        gap = add_scaled(v_previous * coefficient_previous, v, -coefficient)  # d1 - d2
        with np.errstate(over="ignore", under="ignore"):  # huge or tiny terms: S_n below
            gap_squared = _norms(space, gap) ** 2
            first_squared = (coefficient_previous * norms_previous) ** 2  # |d1|^2
            second_squared = (coefficient * norms) ** 2  # |d2|^2
        if v.ndim == 1:  # host scalars as Python floats: NumPy calls cost more than the sums
            first, second, gap_value = (
                float(a[0]) for a in (first_squared, second_squared, gap_squared)
            )
            scale = weight / gap_value if 0 < gap_value < math.inf else math.inf
            if first == 0 or second == 0 or not math.isfinite(scale * max(first, second)):
                return xp.asarray(sums[-1], copy=True)
            estimate = add_scaled(sums[-2], v, scale * first * coefficient)
            estimate = add_scaled(estimate, v_previous, -scale * second * coefficient_previous)
            return estimate if space.all_finite(estimate) else xp.asarray(sums[-1], copy=True)
        bad = (first_squared == 0) | (second_squared == 0) | (gap_squared == 0)
        bad |= ~np.isfinite(gap_squared)
        with np.errstate(over="ignore", invalid="ignore"):
            scale = np.where(bad, 0.0, weight / np.where(bad, 1.0, gap_squared))
            along_v = scale * first_squared * coefficient  # the factor of v_n
            along_previous = -scale * second_squared * coefficient_previous  # of v_{n-1}
        bad |= ~(np.isfinite(along_v) & np.isfinite(along_previous))
        device = _device_of(v)
        estimate = sums[-2] + v * xp.asarray(along_v, dtype=v.dtype, device=device)
        estimate += v_previous * xp.asarray(along_previous, dtype=v.dtype, device=device)
        flag = xp.asarray([bool(value) for value in bad], device=device)
        return finish(xp, estimate, sums[-1], flag, False, space)

    def _tail(self, partial_sum: Any, n: int, v: Any, v_previous: Any) -> Any:
        """``S_n + T_n(x) v_n``: the exact tail of the series for one eigen-component.

        ``x`` is the Rayleigh quotient ``(v_n . v_{n-1}) / (v_{n-1} . v_{n-1})`` of ``Z``, the
        eigenvalue of the slowest component that dominates ``v_n``, and
        ``T_n(x) = sum_{j>n} c_j x^{j-n}`` is summed on the host from the known coefficients.
        """
        xp = self.xp
        numerator = _host(xp, _real(xp, self.space.inner(v, v_previous)))
        denominator = _host(xp, _real(xp, self.space.inner(v_previous, v_previous)))
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.where(denominator > 0, numerator / denominator, 0.0)
        factors = [tail_factor(self.stream, n, float(value)) for value in np.clip(x, -1.0, 1.0)]
        if v.ndim == 1:
            return partial_sum + factors[0] * v
        row = xp.asarray(factors, dtype=v.dtype, device=_device_of(v))
        return partial_sum + row * v


def tail_factor(stream: CoefficientStream, n: int, x: float) -> float:
    """``T_n(x) = sum_{j>=1} c_{n+j} x^j`` in float64 on the host (0 where it is infinite)."""
    if x == 0.0 or not math.isfinite(x):
        return 0.0
    limit = generating_function(stream.kind, x, stream.delta)
    if not math.isfinite(limit):
        return 0.0
    if n * math.log(abs(x)) > -300.0:
        # Closed form (f(x) - P_n(x)) / x^n with P_n the partial sum of the power series.
        head = np.polynomial.polynomial.polyval(x, stream.first(n + 1))
        return float((limit - head) / x**n)
    # x^n underflows: sum the rapidly decaying tail directly.
    count = min(math.ceil(-40.0 / math.log(abs(x))) + 1, 1_000_000)
    coefficients = stream.first(n + count + 1)[n + 1 :]
    return float(np.polynomial.polynomial.polyval(x, np.concatenate([[0.0], coefficients])))


def run_series(
    b: Any,
    setup: SeriesSetup,
    *,
    num_terms: int | None,
    rtol: float | None,
    atol: float,
    maxiter: int | None,
    acceleration: str | None,
    order: int,
    callback: Callable[[Any], Any] | None,
    throw: bool,
    safeguard: bool = True,
) -> SolveResult:
    """Sum the series for ``b`` (a vector or an ``(n, k)`` block) and build the result.

    Overflow becomes ``Status.NONFINITE``, not a NumPy warning (the loop checks every term).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return _run_series(
            b,
            setup,
            num_terms=num_terms,
            rtol=rtol,
            atol=atol,
            maxiter=maxiter,
            acceleration=acceleration,
            order=order,
            callback=callback,
            throw=throw,
            safeguard=safeguard,
        )


def _run_series(
    b: Any,
    setup: SeriesSetup,
    *,
    num_terms: int | None,
    rtol: float | None,
    atol: float,
    maxiter: int | None,
    acceleration: str | None,
    order: int,
    callback: Callable[[Any], Any] | None,
    throw: bool,
    safeguard: bool,
) -> SolveResult:
    xp = _namespace_of(b)
    space = setup.space if setup.space is not None else VectorSpace(xp)
    block = b.ndim == 2
    eps = epsilon(xp, b.dtype)
    growth_tolerance = 1.0 + math.sqrt(eps)
    if num_terms is None and rtol is None:
        rtol = DEFAULT_RTOL
    tolerance_mode = rtol is not None or atol > 0
    rtol_value = 0.0 if rtol is None else float(rtol)
    budget = num_terms if num_terms is not None else (maxiter or DEFAULT_MAXITER)
    if num_terms is not None and maxiter is not None:
        budget = min(num_terms, maxiter)
    V = setup.scale
    alpha = 1.0 - setup.shift / V
    inverse_scale = 1.0 / V
    prefactor = setup.prefactor
    stream = setup.stream
    columns = b.shape[1] if block else 1
    info = dict(setup.info)
    info.update(
        scale=V,
        coefficients=stream.kind,
        acceleration=acceleration,
        order=order if acceleration is not None else None,
    )
    if stream.kind == "damped":
        info["delta"] = stream.delta
    accelerate = None
    if acceleration is not None:
        accelerate = _Accelerator(space, acceleration, order, stream)
    width = 2 * order + 3  # the window, one older sum, and S_{-1} = 0 at the start

    def result(x: Any, status: Status, n_terms: int, estimate: Any, extra: dict) -> SolveResult:
        info.update(extra)
        info.setdefault("advice", None if status.usable else status.value)
        applies = max(n_terms - 1, 0) + info.get("classification_applies", 0)
        n_matvec = setup.n_matvec_before + setup.matvecs_per_apply * columns * applies
        outcome = SolveResult(
            x=x,
            status=status,
            n_matvec=n_matvec,
            n_iter=n_terms,
            error_estimate=estimate,
            info=info,
        )
        return outcome.raise_for_status() if throw else outcome

    b_norms = _norms(space, b)
    if not np.all(np.isfinite(b_norms)):
        nan = xp.full(b.shape, math.nan, dtype=b.dtype, device=_device_of(b))
        none = np.full(columns, math.nan)
        return result(nan, Status.NONFINITE, 0, _report(none, block), {"returned": None})
    if not np.any(b_norms):
        zeros = xp.zeros(b.shape, dtype=b.dtype, device=_device_of(b))
        zero = np.zeros(columns)
        extra = {"returned": "plain", "plain_error_estimate": _report(zero, block)}
        return result(zeros, Status.SUCCESS, 0, _report(zero, block), extra)

    partial_sum = stream[0] * b
    sums: deque[Any] = deque([xp.zeros_like(b), partial_sum], maxlen=width)
    v_previous, norms_previous = b, b_norms
    norm_bound = abs(stream[0]) * b_norms
    growth_limit = 1.5 * b_norms
    plain_estimate = np.full(columns, math.inf)
    accelerated_estimate = np.full(columns, math.inf)
    accelerated, accelerated_at, fresh = None, -1, False
    changes: deque[np.ndarray] = deque(maxlen=3)
    ratio = np.zeros(columns)
    status = Status.COMPLETED if not tolerance_mode else Status.MAX_ITERATIONS
    n_terms = 1
    for n in range(1, budget):
        if n == 1 and setup.first_product is not None:
            product = setup.first_product
        else:
            product = setup.apply(v_previous)
        # v = alpha v_previous - product / V, written in place on one fresh array: two large
        # temporaries alive at once cost more than the arithmetic (allocator page faults).
        if alpha == 1.0:
            v = add_scaled(v_previous, product, -inverse_scale)
        elif alpha == 0.0:
            v = product * -inverse_scale
        else:
            v = product * (-inverse_scale / alpha)
            v += v_previous
            v *= alpha
        norms = _norms(space, v)
        ratio, contracting = _contraction(norms, norms_previous, growth_limit, growth_tolerance)
        if not contracting:
            n_terms = n + 1
            if not np.all(np.isfinite(norms)):
                status = Status.NONFINITE
            else:
                status = _growth_status(
                    space, setup, v, v_previous, ratio, growth_tolerance, info, V
                )
            break
        coefficient = stream[n]
        # a fresh array: the window keeps the older sums intact
        partial_sum = add_scaled(partial_sum, v, coefficient)
        sums.append(partial_sum)
        n_terms = n + 1
        v_older, v_previous = v_previous, v
        norms_older, norms_previous = norms_previous, norms
        last_step = n_terms >= budget
        accelerate_now = (
            accelerate is not None
            and n_terms >= accelerate.minimum_terms
            and (n_terms >= budget - 2 or (tolerance_mode and _accelerate_now(n)))
        )
        if tolerance_mode or last_step or accelerate_now:
            # A contraction within rounding of 1 cannot be told from 1 (a zero eigenvalue of
            # the damped series): geometric tail estimates built from it would be rounding
            # noise, and would differ from backend to backend.
            ratio = np.where(ratio > 1.0 - 16.0 * eps, np.maximum(ratio, 1.0), ratio)
        if tolerance_mode or last_step:
            plain_estimate = _tail_estimate(prefactor, stream, n, norms, ratio)
        fresh = False
        if accelerate_now:
            latest = accelerate(list(sums), n, v, v_older, norms, norms_older)
            if accelerated is not None and accelerated_at == n - 1:
                changes.append(abs(prefactor) * _norms(space, latest - accelerated))
            else:
                changes.clear()
            accelerated, accelerated_at, fresh = latest, n, True
            accelerated_estimate = _accelerated_tail(changes, ratio, columns)
        if tolerance_mode:
            current = accelerated_estimate if fresh else np.full(columns, math.inf)
            if safeguard or accelerated is None:
                best = np.minimum(plain_estimate, current)
            else:
                best = current
            # ||x|| <= |prefactor| sum_j |c_j| ||v_j||: skip the norm while even that bound
            # cannot meet the test (saves a vector pass per term far from convergence).
            norm_bound += abs(coefficient) * norms
            reachable = best <= np.maximum(rtol_value * abs(prefactor) * norm_bound, atol)
            if np.all(reachable):
                solution_norms = abs(prefactor) * _norms(space, partial_sum)
                reachable = best <= np.maximum(rtol_value * solution_norms, atol)
            if np.all(reachable):
                status = Status.SUCCESS
                if callback is not None:
                    callback(prefactor * partial_sum)
                break
        if callback is not None:
            callback(prefactor * partial_sum)

    info["ratio"] = _report(ratio, block)
    info["plain_error_estimate"] = _report(plain_estimate, block)
    if status in (Status.NONFINITE, Status.DIVERGED, Status.INDEFINITE):
        info["returned"] = "plain"
        return result(prefactor * partial_sum, status, n_terms, _report(plain_estimate, block), {})
    if accelerated is None or not fresh:
        info["returned"] = "plain"
        return result(prefactor * partial_sum, status, n_terms, _report(plain_estimate, block), {})
    if not safeguard:
        info["returned"] = "accelerated"
        return result(
            prefactor * accelerated, status, n_terms, _report(accelerated_estimate, block), {}
        )
    use_accelerated = accelerated_estimate <= plain_estimate
    estimate = np.where(use_accelerated, accelerated_estimate, plain_estimate)
    if block:
        mask = xp.asarray([bool(u) for u in use_accelerated], device=_device_of(b))
        x = xp.where(mask, accelerated, partial_sum)
        info["returned"] = ["accelerated" if u else "plain" for u in use_accelerated]
    else:
        x = accelerated if use_accelerated[0] else partial_sum
        info["returned"] = "accelerated" if use_accelerated[0] else "plain"
    return result(prefactor * x, status, n_terms, _report(estimate, block), {})


def _contraction(
    norms: np.ndarray, norms_previous: np.ndarray, growth_limit: np.ndarray, tolerance: float
) -> tuple[np.ndarray, bool]:
    """Return the ratios ``||v_n|| / ||v_{n-1}||`` and whether every column contracts.

    A column contracts when its ratio is at most ``tolerance`` and its norm within
    ``growth_limit``; a NaN fails both. ``v_{n-1} = 0`` gives ``v_n = 0``: ratio 0. One column
    is tested with Python floats: this runs after every term, and NumPy calls on one-element
    arrays cost more than the arithmetic.
    """
    if norms.shape == (1,):
        now, before = float(norms[0]), float(norms_previous[0])
        ratio = now / before if before > 0 else now
        return np.array([ratio]), ratio <= tolerance and now <= float(growth_limit[0])
    ratios = norms / np.where(norms_previous > 0, norms_previous, 1.0)
    return ratios, bool(np.all((ratios <= tolerance) & (norms <= growth_limit)))


def _tail_estimate(
    prefactor: float, stream: CoefficientStream, n: int, norms: np.ndarray, ratio: np.ndarray
) -> np.ndarray:
    """Estimate ``|prefactor| * ||sum_{j>n} c_j v_j||`` from the last term and its ratio.

    The terms contract by ``r = ||v_n|| / ||v_{n-1}||`` per step (the slowest error component
    dominates once the fast ones have died out), and ``|c_j|`` does not increase, so the tail is
    about ``|c_n| ||v_n|| r / (1 - r)``.
    """
    return _geometric_tail(abs(prefactor) * abs(stream[n]) * norms, ratio)


def _accelerate_now(n: int) -> bool:
    """In tolerance mode, accelerate on 3 consecutive terms out of every ``stride``.

    ``stride`` is the power of two near ``n / 16``, at least 8: the accelerator's ``O(K^2)``
    vector operations (about six vector passes for order 1 in its closed form, some three
    matvecs' worth on a 5-point stencil, more for higher orders) are amortised over several
    terms, and the stop is delayed by at most 8 terms or ~6%. (A stride below 4 would
    accelerate after every term.)
    """
    if n < 16:
        return True
    stride = max(8, 1 << int(math.log2(n / 16)))
    return n % stride >= stride - 3


def _accelerated_tail(changes: deque[np.ndarray], ratio: np.ndarray, columns: int) -> np.ndarray:
    """Error of the latest accelerated value: its last change times ``q / (1 - q)``.

    The accelerated values converge linearly too, at best at the rate of an error component
    the accelerator did not remove, which is at most the plain rate ``r``; ``q`` is the larger
    of ``r`` and the last two contraction ratios of the accelerated values themselves, so an
    erratic accelerator is not trusted. Infinite before two consecutive changes are known, and
    whenever ``q >= 1``.
    """
    if len(changes) < 2:
        return np.full(columns, math.inf)
    history = list(changes)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = [
            np.where(before > 0, after / before, np.where(after > 0, math.inf, 0.0))
            for before, after in itertools.pairwise(history)
        ]
    rate = np.maximum.reduce([ratio, *ratios])
    # Without a contraction (q >= 1, e.g. a float32 ratio that rounded to 1) a vanishing change
    # proves nothing: the accelerated values can repeat while the series is far from its limit.
    return np.where(rate < 1.0, _geometric_tail(history[-1], rate), math.inf)


def _geometric_tail(last: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """``last * r / (1 - r)``: the sum of a geometric tail after a step of size ``last``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(ratio < 1.0, ratio / (1.0 - ratio), math.inf)
        tail = last * factor
    return np.where(last == 0, 0.0, tail)


def _growth_status(
    space: VectorSpace,
    setup: SeriesSetup,
    v: Any,
    v_previous: Any,
    ratio: np.ndarray,
    growth_tolerance: float,
    info: dict[str, Any],
    V: float,
) -> Status:
    """Classify growing terms: a negative eigenvalue (SPD methods) or too small a scale."""
    worst = float(np.max(ratio))
    growing = ratio > growth_tolerance
    if setup.spd_method and _negative_eigenvalue(
        space, setup, v, v_previous, V, growing, growth_tolerance, info
    ):
        info["advice"] = (
            "the terms grew along an eigenvalue of the series' operator Z above 1: the "
            "operator has a negative eigenvalue, so it is not positive definite; use "
            "hvpseries.series.abs_inv or a Krylov method for indefinite operators"
        )
        return Status.INDEFINITE
    suggested = (1.0 + worst) * V
    info["advice"] = (
        f"the terms grew by a factor {worst:.3g} per step: the scale V = {V:.6g} is below half "
        f"the largest eigenvalue of the series' operator; use scale='auto' or a float scale >= "
        f"{suggested:.3g}"
    )
    return Status.DIVERGED


#: Power steps on Z that may be spent telling a negative eigenvalue from too small a scale.
_CLASSIFICATION_STEPS = 10


def _negative_eigenvalue(
    space: VectorSpace,
    setup: SeriesSetup,
    v: Any,
    v_previous: Any,
    V: float,
    growing: np.ndarray,
    limit: float,
    info: dict[str, Any],
) -> bool:
    """Whether the growth of an SPD series comes from a negative eigenvalue (not too small V).

    The terms are powers of ``Z = alpha I - M / V``, whose eigenvalues are below ``alpha <= 1``
    for a positive definite operator: growth then means an eigenvalue below -1 (``V`` too
    small), and an eigenvalue above 1 proves a negative one of the operator. A Rayleigh
    quotient ``q = w.Zw / w.w`` lies between the extreme eigenvalues of ``Z``, so ``q > 1``
    proves the latter and ``q < -1`` the former (``limit``: 1 plus rounding; ``growing``: the
    columns whose terms grew). Starting from ``w = v_{n-1}`` (``Z w = v_n``,
    free) a few power steps make the growing component dominate ``q``; they cost one
    application of ``M`` each (added to ``info["classification_applies"]``). Undecided after
    ``_CLASSIFICATION_STEPS``: too small a scale is reported (its advice, a larger ``V``, is
    the one that changes the outcome).
    """
    xp = space.xp
    alpha = 1.0 - setup.shift / V
    w, image = v_previous, v
    for step in range(_CLASSIFICATION_STEPS + 1):
        with np.errstate(divide="ignore", invalid="ignore"):
            quotient = _host(xp, _real(xp, space.inner(w, image))) / _norms(space, w) ** 2
        if np.any(quotient[growing] > limit):
            return True
        if np.all(quotient[growing] < -limit):
            return False
        if step < _CLASSIFICATION_STEPS:
            norms = xp.asarray(_norms(space, image), dtype=image.dtype, device=_device_of(image))
            w = image / norms
            image = w * alpha - setup.apply(w) / V
            info["classification_applies"] = info.get("classification_applies", 0) + 1
    return False


def _real(xp: ModuleType, values: Any) -> Any:
    return xp.real(values) if xp.isdtype(values.dtype, "complex floating") else values


def _namespace_of(x: Any) -> ModuleType:
    from .._core._array_api import array_namespace

    return array_namespace(x)


def _device_of(x: Any) -> Any:
    from .._core._array_api import device

    return device(x)
