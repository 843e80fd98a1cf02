"""Stochastic Lanczos quadrature: tr f(A) and log det A of a symmetric A.

The tridiagonal eigenproblems of the Gauss rules run on the host in float64 on purpose (they
are tiny); the Rademacher probes are drawn on the host from ``numpy.random.default_rng(seed)``
and moved to the device once each.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._core._checks import check_choice, check_nonnegative, check_positive_int, check_tolerances
from .._core._result import Status
from .._core._scalar_function import checked_scalar_function
from .._operators._base import LinearOperator
from ..krylov._lanczos import (
    LanczosProcess,
    check_finite_coefficients,
    check_real,
    checked_symmetric_operator,
)
from ..krylov._spectrum import _check_seed

__all__ = [
    "REORTHOGONALIZE_CHOICES",
    "SpectralTraceResult",
    "check_finite",
    "checked_operator",
    "gauss_rule",
    "logdet",
    "standard_error",
    "start_probe",
    "trace_of_function",
]

REORTHOGONALIZE_CHOICES = ("full", "partial", "none")

# The quadrature of a probe is compared between checkpoints this many Lanczos steps apart; a
# checkpoint costs one m x m tridiagonal eigenproblem on the host, negligible next to 5 matvecs.
_CHECKPOINT_SPACING = 5


@dataclass(frozen=True, repr=False, eq=False)
class SpectralTraceResult:
    r"""Frozen result of :func:`trace_of_function` and :func:`logdet`.

    Attributes
    ----------
    estimate : float
        The estimate of ``tr f(A)``: the mean of the probes' quadrature values.
    standard_error : float
        The probe (Monte Carlo) error: the sample standard deviation of the probes' values over
        ``sqrt(n_probes)``; ``inf`` for a single probe.
    quadrature_error : float
        The estimated error of the Lanczos quadrature in ``estimate``: the mean over the probes
        of ``|Q_m - Q_{m-5}| + |Q_{m-5} - Q_{m-10}|``, the changes of a probe's quadrature
        value over its last ten Lanczos steps (zero for probes whose Krylov space became
        invariant). Usually pessimistic (Gauss quadrature converges fast), but an estimate,
        not a bound: where the quadrature stalls before converging further (``log`` of an
        ill-conditioned or indefinite ``A``) the true error can be a few times larger.
    n_matvec : int
        Operator applications spent, over all probes.
    n_probes : int
        The number of random probes used.
    status : Status
        ``SUCCESS`` when the probe error met the tolerance and every probe's quadrature met
        ``quadrature_rtol``; ``MAX_ITERATIONS`` when ``max_probes`` or ``max_lanczos_steps``
        ran out first; ``COMPLETED`` for a fixed ``num_probes``; ``NONFINITE`` when ``f`` gave
        a NaN or infinite value (the estimate is then that value).
    samples : numpy.ndarray, shape (n_probes,)
        The probes' quadrature values ``||z||^2 e_1^T f(T_m) e_1``.
    lanczos_steps : numpy.ndarray, shape (n_probes,)
        The Lanczos steps (matvecs) spent on each probe.

    Examples
    --------
    >>> import numpy as np
    >>> from hvpseries.spectral import trace_of_function
    >>> result = trace_of_function(np.diag([1.0, 2.0, 3.0]), np.log, num_probes=2)
    >>> result.status.name, result.n_probes, result.converged
    ('COMPLETED', 2, False)
    """

    estimate: float
    standard_error: float
    quadrature_error: float
    n_matvec: int
    n_probes: int
    status: Status
    samples: np.ndarray = field(repr=False)
    lanczos_steps: np.ndarray = field(repr=False)

    @property
    def converged(self) -> bool:
        """Whether the requested tolerances were met (``status.converged``)."""
        return self.status.converged

    @property
    def message(self) -> str:
        """The status message: what happened and what to do about it."""
        return self.status.value

    def __repr__(self) -> str:
        return (
            f"SpectralTraceResult(estimate={self.estimate!r}, standard_error="
            f"{self.standard_error:.3g}, quadrature_error={self.quadrature_error:.3g}, "
            f"n_matvec={self.n_matvec}, n_probes={self.n_probes}, status={self.status.name})"
        )


def trace_of_function(
    A: Any,
    f: Callable[[np.ndarray], Any],
    *,
    rtol: float = 1e-2,
    atol: float = 0.0,
    num_probes: int | None = None,
    min_probes: int = 10,
    max_probes: int = 200,
    lanczos_steps: int | None = None,
    max_lanczos_steps: int = 300,
    quadrature_rtol: float = 1e-3,
    reorthogonalize: str = "full",
    seed: int = 0,
) -> SpectralTraceResult:
    r"""Estimate ``tr f(A)`` for a symmetric ``A`` by stochastic Lanczos quadrature.

    Parameters
    ----------
    A : LinearOperator or matrix
        A real symmetric operator (anything :func:`hvpseries.aslinearoperator` accepts).
    f : callable
        Vectorised on a float64 NumPy array of Ritz values (``np.exp``).
    rtol, atol : float, default 1e-2 and 0
        Probes are added until ``standard_error <= max(rtol * |estimate|, atol)``.
    num_probes : int, optional
        A fixed number of probes instead (a fixed budget: the status is ``COMPLETED``, and
        ``rtol``/``atol`` are not used).
    min_probes : int, default 10
        Probes taken before the stopping test (the standard error of fewer is unreliable).
    max_probes : int, default 200
        The most probes of the adaptive run.
    lanczos_steps : int, optional
        A fixed number of Lanczos steps per probe. Default: adaptive, grown five at a time until
        the probe's quadrature meets ``quadrature_rtol`` (the test is in Notes).
    max_lanczos_steps : int, default 300
        The most Lanczos steps of an adaptive probe.
    quadrature_rtol : float, default 1e-3
        The relative tolerance on the quadrature of each probe (see ``lanczos_steps``).
    reorthogonalize : {"full", "partial", "none"}, default "full"
        Reorthogonalisation of the Lanczos vectors (see :func:`hvpseries.krylov.lanczos`);
        ``"none"`` keeps only three vectors in memory.
    seed : int, default 0
        Seed of the Rademacher probes (the result is deterministic for a given seed, on every
        backend and for row-sharded operators).

    Returns
    -------
    SpectralTraceResult

    Raises
    ------
    ValueError
        For a non-square, empty or non-symmetric operator, or bad tolerances and counts.
    TypeError
        For a complex operator, a non-callable ``f`` or arguments of the wrong type.

    Notes
    -----
    For a probe ``z`` with independent entries ``+-1`` (Rademacher), ``E[z^T f(A) z] = tr f(A)``
    with variance ``2 (||f(A)||_F^2 - sum_i f(A)_ii^2)``. The quadratic form is the integral of
    ``f`` against the spectral measure ``sum_j (v_j^T z)^2 delta(t - lambda_j)``, and ``m``
    Lanczos steps from ``z / ||z||`` give its ``m``-point Gauss quadrature rule: with
    ``T_m = S diag(theta) S^T``,

    ``z^T f(A) z ~ ||z||^2 e_1^T f(T_m) e_1 = ||z||^2 sum_i tau_i^2 f(theta_i)``,
    ``tau_i = S_{1i}``,

    exact for polynomials of degree ``2m - 1`` and so converging like the best polynomial
    approximation of ``f`` on the spectrum. The estimate is the mean of ``N`` probes' values;
    ``standard_error = s / sqrt(N)`` with ``s`` the sample standard deviation. Stopping:
    after ``min_probes`` probes, as soon as ``standard_error <= max(rtol |estimate|, atol)``.
    The error of the estimate is then about ``standard_error`` (a normal approximation: in
    calibration runs over 100 seeds, within two standard errors plus ``quadrature_error`` in
    92-95% of the runs and within three in 98-100%) plus the quadrature error. Per probe,
    the quadrature is checked every five steps and stops when
    ``|Q_m - Q_{m-5}| <= quadrature_rtol * ||z||^2 sum_i tau_i^2 |f(theta_i)|`` (relative to
    the quadrature of ``|f|``, so that a trace near zero from cancellation is fine); its error
    is estimated by the last two such changes. A Lanczos breakdown (an invariant Krylov
    space) makes the rule exact.

    References
    ----------
    .. [1] S. Ubaru, J. Chen and Y. Saad, "Fast estimation of tr(f(A)) via stochastic Lanczos
       quadrature", SIAM J. Matrix Anal. Appl. 38 (2017), 1075-1099.
    .. [2] G. H. Golub and G. Meurant, *Matrices, Moments and Quadrature with Applications*,
       Princeton University Press, 2010.

    Examples
    --------
    >>> import numpy as np
    >>> from hvpseries.spectral import trace_of_function
    >>> A = np.diag(np.linspace(0.0, 1.0, 400))
    >>> result = trace_of_function(A, lambda t: np.exp(-t), rtol=1e-2)
    >>> result.converged
    True
    >>> exact = np.exp(-np.linspace(0.0, 1.0, 400)).sum()
    >>> bool(abs(result.estimate - exact) <= 3 * result.standard_error + result.quadrature_error)
    True
    """
    operator = checked_operator(A, "trace_of_function")
    return _estimate_trace(
        operator,
        checked_scalar_function(f),
        rtol=rtol,
        atol=atol,
        num_probes=num_probes,
        min_probes=min_probes,
        max_probes=max_probes,
        lanczos_steps=lanczos_steps,
        max_lanczos_steps=max_lanczos_steps,
        quadrature_rtol=quadrature_rtol,
        reorthogonalize=reorthogonalize,
        seed=seed,
        check_ritz=None,
    )


def logdet(
    A: Any,
    *,
    absolute: bool = False,
    rtol: float = 1e-2,
    atol: float = 0.0,
    num_probes: int | None = None,
    min_probes: int = 10,
    max_probes: int = 200,
    lanczos_steps: int | None = None,
    max_lanczos_steps: int = 300,
    quadrature_rtol: float = 1e-3,
    reorthogonalize: str = "full",
    seed: int = 0,
) -> SpectralTraceResult:
    r"""Estimate ``log det A = tr log A`` of a symmetric positive definite ``A``, or ``log|det A|``.

    Parameters
    ----------
    A : LinearOperator or matrix
        A real symmetric positive definite operator (any symmetric one with
        ``absolute=True``); anything :func:`hvpseries.aslinearoperator` accepts.
    absolute : bool, default False
        Estimate ``log |det A| = tr log|A|`` instead, for a symmetric indefinite ``A``.
    rtol, atol, num_probes, min_probes, max_probes, lanczos_steps, max_lanczos_steps
        As in :func:`trace_of_function`.
    quadrature_rtol, reorthogonalize, seed
        As in :func:`trace_of_function`.

    Returns
    -------
    SpectralTraceResult
        The status is ``NONFINITE`` (and the estimate ``-inf``) if a Ritz value is exactly 0.

    Raises
    ------
    ValueError
        Without ``absolute``, if ``A`` is tagged ``psd=False`` or a Ritz value ``<= 0`` turns
        up (then ``A`` has a non-positive eigenvalue); the arguments as in
        :func:`trace_of_function`.
    TypeError
        For a complex operator or arguments of the wrong type.

    Notes
    -----
    :func:`trace_of_function` with ``f = log`` (``log|t|``). Every Ritz value lies in
    ``[lambda_min, lambda_max]``, so a Ritz value ``<= 0`` proves that ``A`` is not positive
    definite; the converse does not hold: a negative eigenvalue that no probe's Krylov space
    has resolved yet goes unnoticed, and the estimate is then meaningless. Pass
    ``absolute=True`` when ``A`` may be indefinite.

    The Gauss quadrature of ``log`` converges like the polynomial approximation of ``log`` on
    ``[lambda_min, lambda_max]``, with a rate of about ``1 - 2 / sqrt(kappa)`` per step for the
    condition number ``kappa``: eigenvalues near 0 (ill-conditioning) need more Lanczos steps
    per probe; raise ``max_lanczos_steps`` if the status says the quadrature did not converge.
    With ``absolute=True`` the logarithmic singularity lies inside the spectral interval of an
    indefinite ``A``, and the quadrature converges slowly and erratically when Ritz values
    come close to 0; expect many more steps than for a definite matrix of the same condition.

    References
    ----------
    .. [1] S. Ubaru, J. Chen and Y. Saad, "Fast estimation of tr(f(A)) via stochastic Lanczos
       quadrature", SIAM J. Matrix Anal. Appl. 38 (2017), 1075-1099.

    Examples
    --------
    >>> import numpy as np
    >>> from hvpseries.spectral import logdet
    >>> eigenvalues = np.linspace(1.0, 10.0, 300)
    >>> result = logdet(np.diag(eigenvalues), rtol=1e-3)
    >>> exact = np.log(eigenvalues).sum()
    >>> result.converged, bool(abs(result.estimate - exact) < 5e-3 * exact)
    (True, True)
    >>> logdet(np.diag([-2.0, 1.0, 3.0]), absolute=True, num_probes=4).estimate  # log 6
    1.79175...
    """
    operator = checked_operator(A, "logdet")
    if not isinstance(absolute, bool):
        message = f"absolute must be True or False, got {absolute!r}"
        raise TypeError(message)
    if not absolute and operator.psd is False:
        message = (
            "logdet needs a positive definite operator, but this one is tagged psd=False; pass "
            "absolute=True for log|det A| of an indefinite operator"
        )
        raise ValueError(message)

    def check_ritz(theta: np.ndarray) -> None:
        if absolute or float(theta[0]) > 0.0:
            return
        message = (
            f"logdet found a Ritz value {float(theta[0]):.3g} <= 0, so A is not positive "
            "definite (log det A is not real); pass absolute=True to estimate log|det A|"
        )
        raise ValueError(message)

    def log_abs(t: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):  # log 0 = -inf is reported as NONFINITE
            return np.log(np.abs(t))

    return _estimate_trace(
        operator,
        log_abs,
        rtol=rtol,
        atol=atol,
        num_probes=num_probes,
        min_probes=min_probes,
        max_probes=max_probes,
        lanczos_steps=lanczos_steps,
        max_lanczos_steps=max_lanczos_steps,
        quadrature_rtol=quadrature_rtol,
        reorthogonalize=reorthogonalize,
        seed=seed,
        check_ritz=check_ritz,
    )


def checked_operator(A: Any, method: str) -> LinearOperator:
    """Return ``A`` as a square, real, non-empty operator not tagged non-symmetric, or raise.

    Raises
    ------
    ValueError, TypeError
        Naming ``method`` and what is wrong with ``A``.
    """
    operator = checked_symmetric_operator(A, method)
    check_real(operator, method)
    if operator.global_shape[0] == 0:
        message = f"{method} needs a non-empty operator (got shape (0, 0))"
        raise ValueError(message)
    return operator


def _estimate_trace(
    operator: LinearOperator,
    f: Callable[[np.ndarray], np.ndarray],
    *,
    rtol: float,
    atol: float,
    num_probes: int | None,
    min_probes: int,
    max_probes: int,
    lanczos_steps: int | None,
    max_lanczos_steps: int,
    quadrature_rtol: float,
    reorthogonalize: str,
    seed: int,
    check_ritz: Callable[[np.ndarray], None] | None,
) -> SpectralTraceResult:
    check_tolerances(rtol, atol)
    check_positive_int(num_probes, "num_probes", allow_none=True)
    check_positive_int(min_probes, "min_probes")
    check_positive_int(max_probes, "max_probes")
    if num_probes is None and min_probes > max_probes:
        message = f"min_probes ({min_probes}) must be <= max_probes ({max_probes})"
        raise ValueError(message)
    check_positive_int(lanczos_steps, "lanczos_steps", allow_none=True)
    check_positive_int(max_lanczos_steps, "max_lanczos_steps")
    quadrature_rtol = check_nonnegative(quadrature_rtol, "quadrature_rtol")
    check_choice(reorthogonalize, "reorthogonalize", REORTHOGONALIZE_CHOICES)
    _check_seed(seed)
    rng = np.random.default_rng(seed)
    limit = num_probes if num_probes is not None else max_probes
    samples: list[float] = []
    errors: list[float] = []
    steps: list[int] = []
    n_matvec = 0
    all_quadratures_converged = True
    status = Status.COMPLETED if num_probes is not None else Status.MAX_ITERATIONS
    while len(samples) < limit:
        process = start_probe(operator, rng, reorthogonalize)
        value, error, converged = _probe_quadrature(
            operator,
            process,
            f,
            lanczos_steps=lanczos_steps,
            max_lanczos_steps=max_lanczos_steps,
            quadrature_rtol=quadrature_rtol,
            check_ritz=check_ritz,
        )
        n_matvec += process.n_matvec
        samples.append(value)
        errors.append(error)
        steps.append(process.num_steps)
        all_quadratures_converged &= converged
        if not math.isfinite(value):
            status = Status.NONFINITE
            break
        if num_probes is None and len(samples) >= min_probes:
            mean = float(np.mean(samples))
            if standard_error(np.asarray(samples)) <= max(rtol * abs(mean), atol):
                status = Status.SUCCESS if all_quadratures_converged else Status.MAX_ITERATIONS
                break
    values = np.asarray(samples)
    return SpectralTraceResult(
        estimate=float(values[-1]) if status is Status.NONFINITE else float(np.mean(values)),
        standard_error=standard_error(values),
        quadrature_error=float(np.mean(errors)),
        n_matvec=n_matvec,
        n_probes=values.size,
        status=status,
        samples=values,
        lanczos_steps=np.asarray(steps),
    )


def start_probe(operator: LinearOperator, rng: np.random.Generator, mode: str) -> LanczosProcess:
    """Start a Lanczos process (reorthogonalisation ``mode``) on a new Rademacher probe.

    The probe is drawn on the host (array_api_strict has no random module) over the global
    length and moved to the device once; a row-sharded space keeps its own rows, so every
    process forms the same probe as a single process would. It is normalised on the host:
    ``||z||^2 = n`` exactly.
    """
    n = operator.global_shape[0]
    probe = (2.0 * rng.integers(0, 2, size=n) - 1.0) / math.sqrt(n)
    local = operator.vector_space.shard(probe)
    q0 = operator.xp.asarray(local, dtype=operator.dtype, device=operator.device)
    return LanczosProcess(operator, q0, reorthogonalize=mode, store=mode != "none")


def _probe_quadrature(
    operator: LinearOperator,
    process: LanczosProcess,
    f: Callable[[np.ndarray], np.ndarray],
    *,
    lanczos_steps: int | None,
    max_lanczos_steps: int,
    quadrature_rtol: float,
    check_ritz: Callable[[np.ndarray], None] | None,
) -> tuple[float, float, bool]:
    """Return ``(value, error estimate, quadrature converged)`` of one probe's Gauss rule.

    The error estimate is the sum of the last two changes of the value between checkpoints
    five steps apart, ``|Q_m - Q_{m-5}| + |Q_{m-5} - Q_{m-10}|`` (twice the one change when
    there is only one): a single change underestimates the error by a factor of a few where
    the quadrature converges in stages (an ill-conditioned ``log``).
    """
    n = operator.global_shape[0]
    cap = min(lanczos_steps if lanczos_steps is not None else max_lanczos_steps, n)

    def run_to(target: int) -> tuple[float, float, bool]:
        # Step to `target` steps (or a breakdown); return the rule's value, the same for |f|
        # (the scale of its error), and whether the value is final (exact rule, or not finite).
        while process.num_steps < target and process.step():
            pass
        check_finite(process)
        value, scale = _quadrature(process, process.num_steps, f, check_ritz, n)
        return value, scale, _exact(process, n) or not math.isfinite(value)

    if lanczos_steps is not None:
        # A fixed budget: run it, and compare with the rules five and ten steps shorter.
        value, _, final = run_to(cap)
        if final:
            return value, 0.0, True
        m = process.num_steps
        shorter = [k for k in (m - _CHECKPOINT_SPACING, m - 2 * _CHECKPOINT_SPACING) if k >= 1]
        values = [value] + [_quadrature(process, k, f, check_ritz, n)[0] for k in shorter]
        changes = list(np.abs(np.diff(values[::-1])))  # oldest first
        return value, _error_from_changes(changes), True
    previous: float | None = None
    changes: list[float] = []
    while True:
        value, scale, final = run_to(min(process.num_steps + _CHECKPOINT_SPACING, cap))
        if final:
            return value, 0.0, True
        if previous is not None:
            changes.append(abs(value - previous))
            if changes[-1] <= quadrature_rtol * scale:
                return value, _error_from_changes(changes), True
        if process.num_steps >= cap:
            return value, _error_from_changes(changes), False
        previous = value


def _error_from_changes(changes: list[float]) -> float:
    # changes: the value's changes between checkpoints, oldest first
    if not changes:
        return math.inf
    if len(changes) == 1:
        return 2.0 * changes[0]
    return changes[-1] + changes[-2]


def _exact(process: LanczosProcess, n: int) -> bool:
    # An invariant Krylov space (a breakdown) or n steps: the Gauss rule is exact.
    return process.broke_down or process.num_steps >= n


def check_finite(process: LanczosProcess) -> None:
    """Raise ``ValueError`` if the Lanczos coefficients are not finite (a non-finite matvec)."""
    check_finite_coefficients(process.alpha, process.beta)


def _quadrature(
    process: LanczosProcess,
    m: int,
    f: Callable[[np.ndarray], np.ndarray],
    check_ritz: Callable[[np.ndarray], None] | None,
    n: int,
) -> tuple[float, float]:
    """Return ``n e_1^T f(T_m) e_1`` and the same for ``|f|`` (the scale of its error)."""
    theta, tau2 = gauss_rule(process, m)
    if check_ritz is not None:
        check_ritz(theta)
    values = f(theta)
    with np.errstate(invalid="ignore"):  # inf - inf in a non-finite rule is reported as such
        return n * float(tau2 @ values), n * float(tau2 @ np.abs(values))


def gauss_rule(process: LanczosProcess, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes (Ritz values, ascending) and weights of the Gauss rule of the first ``m`` steps."""
    # Host-side on purpose: T_m is tiny and LAPACK's tridiagonal solver is the right tool.
    from scipy.linalg import eigh_tridiagonal

    alpha = np.asarray(process.alpha[:m], dtype=np.float64)
    if m == 1:
        return alpha, np.ones(1)
    off = np.asarray(process.beta[: m - 1], dtype=np.float64)
    theta, vectors = eigh_tridiagonal(alpha, off)
    return theta, vectors[0] ** 2


def standard_error(values: np.ndarray) -> float:
    """Return the standard error of the mean of ``values`` (``inf`` for fewer than two)."""
    if values.size < 2:
        return math.inf
    return float(np.std(values, ddof=1) / math.sqrt(values.size))
