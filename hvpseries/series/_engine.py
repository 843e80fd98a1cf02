"""The loop shared by every series solver: terms, partial sums, estimates, acceleration.

Every solver of :mod:`hvpseries.series` computes ``prefactor * sum_n c_n v_n`` with
``v_0 = b`` and ``v_n = alpha v_{n-1} - (1/V) M v_{n-1}`` where ``M`` is ``A^2`` (two matvecs)
or ``A`` (one matvec); the solvers choose ``M``, ``V``, ``alpha`` and the coefficients
(:class:`SeriesSetup`), and :func:`run` sums the series for their posed problem.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._core._array_api import add_scaled, device, epsilon, host_values
from .._core._result import SolveResult, Status
from .._core._vector_space import VectorSpace
from .._solve._problem import Problem, pose
from ._accelerator import LatestTerms, SumAccelerator, host_norms, real_part
from ._coefficients import CoefficientStream
from ._options import SeriesOptions

__all__ = [
    "DEFAULT_MAXITER",
    "DEFAULT_RTOL",
    "SeriesSetup",
    "pose_series",
    "run",
    "trivial_rhs",
]

#: Default cap on the number of terms when a tolerance is given without maxiter or num_terms.
DEFAULT_MAXITER = 1000
#: Default tolerance when neither num_terms nor rtol is given.
DEFAULT_RTOL = 1e-6


@dataclass
class SeriesSetup:
    """What a solver hands to :func:`run`: the series operator, scale and coefficients."""

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


def trivial_rhs(problem: Problem) -> bool:
    """Whether ``b`` is all zeros or not finite (answered without any matvec).

    From the norms the problem keeps: a non-finite norm (a non-finite ``b``, or a finite one
    whose norm overflows) counts as not finite.
    """
    norms = problem.b_norms
    return not (problem.finite and np.all(np.isfinite(norms))) or not np.any(norms)


def pose_series(A: Any, b: Any, *, method: str, rtol: Any, atol: Any, callback: Any) -> Problem:
    """Pose a series solver's call (:func:`~hvpseries._solve._problem.pose`; ``rtol`` may be None).

    The series are linear in ``b`` and solve a block's columns together, so a badly scaled
    ``b`` is rescaled as a whole (per column).
    """
    return pose(A, b, method=method, rtol=rtol, atol=atol, callback=callback, rtol_may_be_none=True)


def run(
    problem: Problem, setup: SeriesSetup, options: SeriesOptions, *, safeguard: bool = True
) -> SolveResult:
    """Sum the series of ``setup`` for the posed ``problem`` and return the raw result.

    ``b`` is a vector or an ``(n, k)`` block; ``problem.rtol``, ``problem.atol`` and
    ``options`` choose the stop. ``safeguard``: return the accelerated value only where its
    estimate beats the plain sum's (``False`` for the paper's rule: always accelerated).
    Overflow becomes ``Status.NONFINITE``, not a NumPy warning (the loop checks every term).
    The result is the raw one, for :func:`hvpseries._solve._problem.finish`.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return _Summation(problem, setup, options, safeguard).run()


@dataclass(frozen=True)
class _Stop:
    """When the summation stops: the term budget and the tolerance test."""

    budget: int  # most terms
    tolerance_mode: bool  # stop on the estimates (else: sum the budget)
    rtol: float  # 0.0 without rtol
    atol: float


def _stop(problem: Problem, options: SeriesOptions) -> _Stop:
    rtol, num_terms, maxiter = problem.rtol, options.num_terms, options.maxiter
    if num_terms is None and rtol is None:
        rtol = DEFAULT_RTOL
    budget = num_terms if num_terms is not None else (maxiter or DEFAULT_MAXITER)
    if num_terms is not None and maxiter is not None:
        budget = min(num_terms, maxiter)
    return _Stop(
        budget=budget,
        tolerance_mode=rtol is not None or problem.atol > 0,
        rtol=0.0 if rtol is None else float(rtol),
        atol=problem.atol,
    )


class _Summation:
    """One run of the series: the state of the loop from ``S_0 = c_0 b`` to the result.

    ``v_previous`` is the latest term, ``partial_sum`` the latest plain sum ``S_n`` and
    ``sums`` the window of the accelerator; ``plain_estimate`` and ``accelerated_estimate``
    are the error estimates of the plain and the latest accelerated value (``accelerated``,
    computed after term ``accelerated_at``; ``fresh`` when that was the last term summed).
    """

    def __init__(
        self, problem: Problem, setup: SeriesSetup, options: SeriesOptions, safeguard: bool
    ) -> None:
        b = problem.b
        self.problem, self.setup, self.safeguard = problem, setup, safeguard
        self.xp, self.space, self.b = problem.xp, problem.space, b
        self.callback = problem.callback
        self.block = b.ndim == 2
        self.columns = b.shape[1] if self.block else 1
        self.eps = epsilon(self.xp, b.dtype)
        self.growth_tolerance = 1.0 + math.sqrt(self.eps)
        self.stop = _stop(problem, options)
        self.V = setup.scale
        self.alpha = 1.0 - setup.shift / self.V
        self.inverse_scale = 1.0 / self.V
        self.prefactor = setup.prefactor
        self.stream = setup.stream
        self.info = _initial_info(setup, options)
        self.accelerate = None
        if options.acceleration is not None:
            self.accelerate = SumAccelerator(
                self.space, options.acceleration, options.order, self.stream
            )
        self.width = 2 * options.order + 3  # the window, one older sum, and S_{-1} = 0

    def run(self) -> SolveResult:
        """Sum the series and return the result."""
        if trivial_rhs(self.problem):
            return self._trivial_result()
        self._start()
        for n in range(1, self.stop.budget):
            if self._add_term(n):
                break
        return self._final_result()

    def _result(
        self, x: Any, status: Status, n_terms: int, estimate: Any, extra: dict[str, Any]
    ) -> SolveResult:
        info = self.info
        info.update(extra)
        info.setdefault("advice", None if status.usable else status.value)
        applies = max(n_terms - 1, 0) + info.get("classification_applies", 0)
        setup = self.setup
        n_matvec = setup.n_matvec_before + setup.matvecs_per_apply * self.columns * applies
        return SolveResult(
            x=x,
            status=status,
            n_matvec=n_matvec,
            n_iter=n_terms,
            error_estimate=estimate,
            info=info,
        )

    def _trivial_result(self) -> SolveResult:
        """NaN for a non-finite ``b`` (``NONFINITE``), zeros for a zero one (``SUCCESS``)."""
        xp, b, block = self.xp, self.b, self.block
        if not np.all(np.isfinite(self.problem.b_norms)):
            nan = xp.full(b.shape, math.nan, dtype=b.dtype, device=device(b))
            none = np.full(self.columns, math.nan)
            return self._result(nan, Status.NONFINITE, 0, _report(none, block), {"returned": None})
        zeros = xp.zeros(b.shape, dtype=b.dtype, device=device(b))
        zero = np.zeros(self.columns)
        extra = {"returned": "plain", "plain_error_estimate": _report(zero, block)}
        return self._result(zeros, Status.SUCCESS, 0, _report(zero, block), extra)

    def _start(self) -> None:
        """Set the state after the first term ``S_0 = c_0 b``."""
        b, b_norms, columns = self.b, self.problem.b_norms, self.columns
        self.partial_sum = self.stream[0] * b
        self.sums: deque[Any] = deque([self.xp.zeros_like(b), self.partial_sum], maxlen=self.width)
        self.v_previous, self.norms_previous = b, b_norms
        self.norm_bound = abs(self.stream[0]) * b_norms
        self.growth_limit = 1.5 * b_norms
        self.plain_estimate = np.full(columns, math.inf)
        self.accelerated_estimate = np.full(columns, math.inf)
        self.accelerated: Any = None
        self.accelerated_at, self.fresh = -1, False
        self.changes: deque[np.ndarray] = deque(maxlen=3)
        self.ratio = np.zeros(columns)
        self.status = Status.COMPLETED if not self.stop.tolerance_mode else Status.MAX_ITERATIONS
        self.n_terms = 1

    def _next_term(self, n: int) -> Any:
        """``v_n = alpha v_{n-1} - M v_{n-1} / V``."""
        setup, v_previous, alpha = self.setup, self.v_previous, self.alpha
        if n == 1 and setup.first_product is not None:
            product = setup.first_product
        else:
            product = setup.apply(v_previous)
        # v = alpha v_previous - product / V, written in place on one fresh array: two large
        # temporaries alive at once cost more than the arithmetic (allocator page faults).
        if alpha == 1.0:
            return add_scaled(v_previous, product, -self.inverse_scale)
        if alpha == 0.0:
            return product * -self.inverse_scale
        v = product * (-self.inverse_scale / alpha)
        v += v_previous
        v *= alpha
        return v

    def _add_term(self, n: int) -> bool:
        """Add term ``n`` to the sums and estimates; return whether the run stops here."""
        stop = self.stop
        v = self._next_term(n)
        norms = host_norms(self.space, v)
        self.ratio, contracting = _contraction(
            norms, self.norms_previous, self.growth_limit, self.growth_tolerance
        )
        if not contracting:
            self.n_terms = n + 1
            self.status = self._growth(v, norms)
            return True
        coefficient = self.stream[n]
        # a fresh array: the window keeps the older sums intact
        self.partial_sum = add_scaled(self.partial_sum, v, coefficient)
        self.sums.append(self.partial_sum)
        self.n_terms = n + 1
        v_older, self.v_previous = self.v_previous, v
        norms_older, self.norms_previous = self.norms_previous, norms
        last_step = self.n_terms >= stop.budget
        accelerate_now = (
            self.accelerate is not None
            and self.n_terms >= self.accelerate.minimum_terms
            and (self.n_terms >= stop.budget - 2 or (stop.tolerance_mode and _accelerate_now(n)))
        )
        if stop.tolerance_mode or last_step or accelerate_now:
            # A contraction within rounding of 1 cannot be told from 1 (a zero eigenvalue of
            # the damped series): geometric tail estimates built from it would be rounding
            # noise, and would differ from backend to backend.
            ratio = self.ratio
            self.ratio = np.where(ratio > 1.0 - 16.0 * self.eps, np.maximum(ratio, 1.0), ratio)
        if stop.tolerance_mode or last_step:
            self.plain_estimate = _tail_estimate(self.prefactor, self.stream, n, norms, self.ratio)
        self.fresh = False
        if accelerate_now:
            self._accelerate(LatestTerms(n, v, v_older, norms, norms_older))
        if stop.tolerance_mode and self._converged(coefficient, norms):
            self.status = Status.SUCCESS
            if self.callback is not None:
                self.callback(self.prefactor * self.partial_sum)
            return True
        if self.callback is not None:
            self.callback(self.prefactor * self.partial_sum)
        return False

    def _growth(self, v: Any, norms: np.ndarray) -> Status:
        """Return the status of a run whose latest term ``v`` did not contract."""
        if not np.all(np.isfinite(norms)):
            return Status.NONFINITE
        return _growth_status(
            self.space,
            self.setup,
            v,
            self.v_previous,
            self.ratio,
            self.growth_tolerance,
            self.info,
            self.V,
        )

    def _accelerate(self, latest: LatestTerms) -> None:
        """Accelerate after term ``latest.n`` and estimate the error from the last changes."""
        assert self.accelerate is not None
        estimate = self.accelerate(list(self.sums), latest)
        if self.accelerated is not None and self.accelerated_at == latest.n - 1:
            self.changes.append(
                abs(self.prefactor) * host_norms(self.space, estimate - self.accelerated)
            )
        else:
            self.changes.clear()
        self.accelerated, self.accelerated_at, self.fresh = estimate, latest.n, True
        self.accelerated_estimate = _accelerated_tail(self.changes, self.ratio, self.columns)

    def _converged(self, coefficient: float, norms: np.ndarray) -> bool:
        """Whether the best estimate meets ``max(rtol ||x||, atol)`` in every column."""
        stop, prefactor, columns = self.stop, self.prefactor, self.columns
        current = self.accelerated_estimate if self.fresh else np.full(columns, math.inf)
        if self.safeguard or self.accelerated is None:
            best = np.minimum(self.plain_estimate, current)
        else:
            best = current
        # ||x|| <= |prefactor| sum_j |c_j| ||v_j||: skip the norm while even that bound
        # cannot meet the test (saves a vector pass per term far from convergence).
        self.norm_bound += abs(coefficient) * norms
        reachable = best <= np.maximum(stop.rtol * abs(prefactor) * self.norm_bound, stop.atol)
        if np.all(reachable):
            solution_norms = abs(prefactor) * host_norms(self.space, self.partial_sum)
            reachable = best <= np.maximum(stop.rtol * solution_norms, stop.atol)
        return bool(np.all(reachable))

    def _final_result(self) -> SolveResult:
        """Return the plain or the accelerated value (per column), whichever estimate is lower."""
        info, block, prefactor = self.info, self.block, self.prefactor
        status, n_terms, plain = self.status, self.n_terms, self.plain_estimate
        info["ratio"] = _report(self.ratio, block)
        info["plain_error_estimate"] = _report(plain, block)
        failed = status in (Status.NONFINITE, Status.DIVERGED, Status.INDEFINITE)
        if failed or self.accelerated is None or not self.fresh:
            info["returned"] = "plain"
            x = prefactor * self.partial_sum
            return self._result(x, status, n_terms, _report(plain, block), {})
        accelerated, accelerated_estimate = self.accelerated, self.accelerated_estimate
        if not self.safeguard:
            info["returned"] = "accelerated"
            x = prefactor * accelerated
            return self._result(x, status, n_terms, _report(accelerated_estimate, block), {})
        use_accelerated = accelerated_estimate <= plain
        estimate = np.where(use_accelerated, accelerated_estimate, plain)
        if block:
            mask = self.xp.asarray([bool(u) for u in use_accelerated], device=device(self.b))
            x = self.xp.where(mask, accelerated, self.partial_sum)
            info["returned"] = ["accelerated" if u else "plain" for u in use_accelerated]
        else:
            x = accelerated if use_accelerated[0] else self.partial_sum
            info["returned"] = "accelerated" if use_accelerated[0] else "plain"
        return self._result(prefactor * x, status, n_terms, _report(estimate, block), {})


def _initial_info(setup: SeriesSetup, options: SeriesOptions) -> dict[str, Any]:
    """Return the solver's ``info`` with the keys every series result has from the start."""
    info = dict(setup.info)
    acceleration = options.acceleration
    info.update(
        scale=setup.scale,
        coefficients=setup.stream.kind,
        acceleration=acceleration,
        order=options.order if acceleration is not None else None,
    )
    if setup.stream.kind == "damped":
        info["delta"] = setup.stream.delta
    return info


def _report(values: np.ndarray, block: bool) -> Any:
    return values.copy() if block else float(values[0])


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
            quotient = host_values(real_part(xp, space.inner(w, image))) / host_norms(space, w) ** 2
        if np.any(quotient[growing] > limit):
            return True
        if np.all(quotient[growing] < -limit):
            return False
        if step < _CLASSIFICATION_STEPS:
            norms = xp.asarray(host_norms(space, image), dtype=image.dtype, device=device(image))
            w = image / norms
            image = w * alpha - setup.apply(w) / V
            info["classification_applies"] = info.get("classification_applies", 0) + 1
    return False
