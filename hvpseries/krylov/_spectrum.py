"""Spectral tools: an enclosure of the spectrum and power iteration, from a few matvecs."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._core._array_api import epsilon
from .._core._checks import check_positive_int, check_tolerances
from .._operators._base import LinearOperator
from .._solve._rhs_scaling import accurate_norm
from .._solve._validation import prepare_system
from ._lanczos import check_finite_coefficients, checked_symmetric_operator

__all__ = ["PowerIterationResult", "SpectralBounds", "power_iteration", "spectral_bounds"]


@dataclass(frozen=True)
class SpectralBounds:
    """An interval ``[lower, upper]`` meant to enclose the spectrum of a symmetric operator.

    Attributes
    ----------
    lower : float
        Estimated lower bound, ``lower <= lambda_min``.
    upper : float
        Estimated upper bound, ``upper >= lambda_max``.
    n_matvec : int
        Operator applications spent.
    ritz_values : numpy.ndarray
        The Ritz values of the Lanczos run (ascending), all inside the true spectral interval.
    exact : bool
        Whether the Lanczos run found an invariant subspace, so that the Ritz values are
        exact eigenvalues.
    """

    lower: float
    upper: float
    n_matvec: int
    ritz_values: np.ndarray = field(compare=False)
    exact: bool = False

    @property
    def max_abs(self) -> float:
        """``max(|lower|, |upper|)``: a bound on the spectral radius ``max |lambda|``."""
        return max(abs(self.lower), abs(self.upper))

    @property
    def width(self) -> float:
        """``upper - lower``."""
        return self.upper - self.lower


def _check_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        message = f"seed must be an integer >= 0, got {seed!r}"
        raise TypeError(message) if not isinstance(seed, numbers.Integral) else ValueError(message)


def _random_start(operator: LinearOperator, seed: int) -> Any:
    # Generated with NumPy on the host (array_api_strict has no random module) and moved to
    # the operator's device once. The whole vector is drawn and the space keeps its own rows,
    # so that row-sharded vectors form the same start vector as a single process.
    rng = np.random.default_rng(seed)
    space = operator.vector_space
    vector = space.shard(rng.standard_normal(operator.global_shape[0]))
    return operator.xp.asarray(vector, dtype=operator.dtype, device=operator.device)


def spectral_bounds(A: Any, *, num_matvecs: int = 20, seed: int = 0) -> SpectralBounds:
    r"""Estimate an interval ``[lower, upper]`` enclosing the spectrum of a symmetric ``A``.

    Runs ``num_matvecs`` Lanczos steps with full reorthogonalisation from a random start
    vector and widens the extreme Ritz values by their residual bounds and a safety margin.

    Parameters
    ----------
    A : LinearOperator or matrix
        A symmetric operator (anything :func:`hvpseries.aslinearoperator` accepts); operators
        tagged ``symmetric=False`` are refused.
    num_matvecs : int, default 20
        Lanczos steps (matvecs). More steps give tighter bounds; 20 is plenty for scale
        factors and Chebyshev intervals.
    seed : int, default 0
        Seed of the random start vector (the result is deterministic for a given seed).

    Returns
    -------
    SpectralBounds

    Raises
    ------
    ValueError
        For an operator tagged non-symmetric or a non-square operator, or one that returns
        NaN or infinite values.

    Notes
    -----
    What is rigorous and what is not. Every Ritz value ``theta`` lies in
    ``[lambda_min, lambda_max]`` (it is a Rayleigh quotient), so ``[theta_min, theta_max]`` is
    an *inner* bound. Each Ritz pair also satisfies ``|theta_i - lambda| <= r_i`` for some
    eigenvalue ``lambda`` of ``A``, with ``r_i = beta_m |s_{m,i}|`` its residual norm; this
    proves that an eigenvalue lies near ``theta_i``, not that none lies beyond it. The outer
    bounds returned here are

    ``upper = theta_max + beta_m + margin``, ``lower = theta_min - beta_m - margin``,

    with ``beta_m = ||r||`` the norm of the whole Lanczos residual (at least every ``r_i``)
    and ``margin = 0.01 (theta_max - theta_min) + 10 sqrt(n) eps max|theta|`` a safety
    margin against rounding and slowly converging ends. Widening the extreme Ritz values by
    the full residual norm is the bound of Zhou and Li (2011) that is observed to hold in
    practice; it is *probabilistic*, not guaranteed: any Krylov method can miss an
    eigenvalue whose eigenvector is (nearly) orthogonal to the start vector. The random
    Gaussian start vector makes that an event of small probability (the component along any
    fixed eigenvector is a Gaussian), and a tiny component only delays, not prevents, the
    detection. When the Krylov space becomes invariant (a breakdown), the Ritz values are
    eigenvalues and, with probability one for a random start, all distinct eigenvalues were
    found: then ``exact`` is ``True`` and only the rounding margin is added.

    References
    ----------
    .. [1] Y. Zhou and R.-C. Li, "Bounding the spectrum of large Hermitian matrices",
       Linear Algebra Appl. 435 (2011), 480-493.

    Examples
    --------
    >>> import numpy as np
    >>> import hvpseries as hs
    >>> A = np.diag(np.linspace(-2.0, 3.0, 50))
    >>> bounds = hs.spectral_bounds(A)
    >>> bool(bounds.lower <= -2.0 and bounds.upper >= 3.0)
    True
    >>> bool(3.0 <= bounds.max_abs <= 4.5)
    True
    """
    from ._lanczos import run_lanczos

    operator = checked_symmetric_operator(A, "spectral_bounds")
    check_positive_int(num_matvecs, "num_matvecs")
    _check_seed(seed)
    n = operator.global_shape[0]
    if n == 0:
        message = "spectral_bounds needs a non-empty operator (got shape (0, 0))"
        raise ValueError(message)
    start = _random_start(operator, seed)
    decomposition = run_lanczos(operator, start, min(num_matvecs, n), reorthogonalize="full")
    check_finite_coefficients(decomposition.alpha, decomposition.beta)
    ritz = decomposition.ritz_values()
    residual = float(decomposition.beta[-1])
    theta_min, theta_max = float(ritz[0]), float(ritz[-1])
    scale = max(abs(theta_min), abs(theta_max))
    rounding = 10.0 * math.sqrt(n) * epsilon(operator.xp, operator.dtype) * scale
    if decomposition.breakdown:
        margin, residual = rounding, 0.0
    else:
        margin = 0.01 * (theta_max - theta_min) + rounding
    return SpectralBounds(
        lower=theta_min - residual - margin,
        upper=theta_max + residual + margin,
        n_matvec=decomposition.n_matvec,
        ritz_values=ritz,
        exact=decomposition.breakdown,
    )


@dataclass(frozen=True, repr=False)
class PowerIterationResult:
    """Frozen result of :func:`power_iteration`.

    Attributes
    ----------
    eigenvalue : float
        The Rayleigh quotient of the last iterate: an estimate of the eigenvalue of largest
        magnitude (with its sign).
    eigenvector : array
        The last (normalised) iterate, in the operator's library and device.
    residual_norm : float
        ``||A v - eigenvalue v||``: some eigenvalue lies within this distance of
        ``eigenvalue``.
    n_matvec : int
        Operator applications spent.
    converged : bool
        Whether ``residual_norm <= rtol |eigenvalue|`` was reached.
    """

    eigenvalue: float
    eigenvector: Any
    residual_norm: float
    n_matvec: int
    converged: bool

    def __repr__(self) -> str:
        return (
            f"PowerIterationResult(eigenvalue={self.eigenvalue!r}, residual_norm="
            f"{self.residual_norm:.3g}, n_matvec={self.n_matvec}, converged={self.converged})"
        )


def power_iteration(
    A: Any,
    v0: Any = None,
    *,
    rtol: float = 1e-6,
    maxiter: int = 1000,
    seed: int = 0,
) -> PowerIterationResult:
    r"""Estimate the eigenvalue of largest magnitude of a symmetric ``A`` by power iteration.

    Parameters
    ----------
    A : LinearOperator or matrix
        A symmetric operator (anything :func:`hvpseries.aslinearoperator` accepts).
    v0 : array, optional
        Start vector; a random Gaussian vector (from ``seed``) if omitted.
    rtol : float, default 1e-6
        Stop when the eigen-residual satisfies ``||A v - theta v|| <= rtol |theta|``.
    maxiter : int, default 1000
        Maximum number of matvecs.
    seed : int, default 0
        Seed of the random start vector.

    Returns
    -------
    PowerIterationResult

    Notes
    -----
    Converges like ``(|lambda_2| / |lambda_1|)^k``; when the two largest eigenvalues have
    equal magnitude and opposite signs it does not converge (the Rayleigh quotient then
    underestimates ``max |lambda|``). For a bound on ``max |lambda|`` prefer
    :func:`spectral_bounds`, which needs far fewer matvecs.

    Examples
    --------
    >>> import numpy as np
    >>> import hvpseries as hs
    >>> result = hs.power_iteration(np.diag([1.0, 2.0, -5.0]), rtol=1e-10)
    >>> round(result.eigenvalue, 8), result.converged
    (-5.0, True)
    """
    operator = checked_symmetric_operator(A, "power_iteration")
    check_tolerances(rtol, 0.0)
    check_positive_int(maxiter, "maxiter")
    _check_seed(seed)
    if v0 is None:
        v = _random_start(operator, seed)
    else:
        operator, v = prepare_system(operator, v0)
        if v.ndim != 1:
            message = f"v0 must be a vector of shape (n,), got {tuple(v.shape)}"
            raise ValueError(message)
    space = operator.vector_space
    norm = accurate_norm(space, v)
    if norm == 0.0 or not math.isfinite(norm):
        message = f"the start vector must be nonzero and finite, its norm is {norm}"
        raise ValueError(message)
    v = v / norm
    theta, residual, converged = 0.0, math.inf, False
    n_matvec = 0
    for _ in range(maxiter):
        w = operator.matvec(v)
        n_matvec += 1
        theta = float(space.inner(v, w))
        # accurate also for an operator of tiny or huge norm (the squares under/overflow)
        residual = accurate_norm(space, w - theta * v)
        w_norm = accurate_norm(space, w)
        if residual <= rtol * abs(theta) or w_norm == 0.0 or not math.isfinite(w_norm):
            converged = w_norm > 0.0 and math.isfinite(w_norm)
            break
        v = w / w_norm
    return PowerIterationResult(
        eigenvalue=theta,
        eigenvector=v,
        residual_norm=residual,
        n_matvec=n_matvec,
        converged=converged,
    )
