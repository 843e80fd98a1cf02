r"""A bound on the Lanczos f(A) b error from spectrum the Krylov space has not resolved.

The Lanczos approximation of ``f(A) b`` is ``p(A) b`` for the polynomial
``p = sum_k y_k p_k`` of degree ``m - 1`` (``p_k`` the orthonormal Lanczos polynomials,
``y = f(T) e_1``), and its error is

.. math:: \|f(A) b - p(A) b\|^2 = \|b\|^2 \int |f(t) - p(t)|^2 \, dF(t),

with ``F`` the spectral distribution of ``b / ||b||``. The checkpoint differences estimate
this where the Krylov space has seen the spectrum; they cannot see eigenvalues it has not
found yet. Where ``f`` is analytic around the Ritz values' hull, ``p`` follows ``f`` a little
beyond it, but past a point where ``f`` is not analytic (0 for ``1/(|t| + d)`` and
``sign(t)``) ``p`` follows ``f``'s analytic continuation instead of ``f``: an eigenvalue there
which the Krylov space has not found yet costs an error that no two iterates reveal.

The Chebyshev-Markov-Stieltjes inequality bounds that: every distribution with the first
``2m`` moments of ``F`` (all that ``m`` Lanczos steps know) has mass at most
``lambda_m(t) = 1 / sum_{k<m} p_k(t)^2`` (the Christoffel function) in ``(-inf, t]`` for ``t``
below the Ritz values, and in ``[t, inf)`` above them. Integrating by parts with ``G`` the
running maximum of ``|f - p|^2`` from the kink outwards,

.. math:: \int_{t \le c} |f - p|^2 \, dF \le \lambda_m(c) G(c) + \int_{t < c} \lambda_m \, dG,

since ``lambda_m`` decreases away from the hull. That is a bound from the Krylov data alone,
evaluated here by quadrature on a geometric grid of distances from the kink, out to ten times
the largest Ritz value's magnitude (Lanczos finds the spectrum's largest magnitudes first).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["unresolved_error_bound"]

# Grid of distances from the kink: from this fraction of the reach to the reach, geometric.
_GRID_POINTS = 160
_SMALLEST_DISTANCE = 1e-12
# The reach beyond the kink: this many times the largest Ritz magnitude (plus the last
# off-diagonal, which bounds how far the spectrum may extend past the Ritz values' range).
_REACH_FACTOR = 10.0
# The recurrence is rescaled by 10^-100 whenever a value passes 10^100 (no overflow at m ~ 10^4).
_RESCALE = 1e100
_LOG_RESCALE = 100.0 * np.log(10.0)
_LOG_ZERO = -2000.0


def unresolved_error_bound(
    alpha: np.ndarray,
    beta: np.ndarray,
    f: Callable[[np.ndarray], np.ndarray],
    coefficients: np.ndarray,
    ritz: np.ndarray,
    kinks: Sequence[float],
    spectrum_lower: float = -np.inf,
    spectrum_upper: float = np.inf,
) -> float:
    """Bound the error of ``p(A) b / ||b||`` from unresolved spectrum around the kinks of ``f``.

    Parameters
    ----------
    alpha : ndarray, shape (m,)
        Diagonal of the Lanczos tridiagonal.
    beta : ndarray, shape (m,)
        Its off-diagonal followed by the last residual norm ``beta_m``.
    f : callable
        The function, on float64 NumPy arrays.
    coefficients : ndarray, shape (m,)
        ``f(T) e_1`` (for ``b`` of unit norm).
    ritz : ndarray, shape (m,)
        The Ritz values (eigenvalues of ``T``), ascending.
    kinks : sequence of float
        Points where ``f`` is not analytic.
    spectrum_lower : float, default -inf
        A known lower bound of the spectrum (0 for an operator tagged positive semi-definite):
        no eigenvalue is assumed below it.
    spectrum_upper : float, default inf
        A known upper bound of the spectrum.

    Returns
    -------
    float
        For a kink outside the Ritz hull, an upper bound on ``(int_U |f - p|^2 dF)^(1/2)``
        over the part ``U`` of the line beyond it; for a kink between two Ritz values, the
        largest error ``lambda_m(t)^(1/2) |f(t) - p(t)|`` one eigenvalue ``t`` in that gap can
        cause; the sum over the kinks (0 when there is none; ``inf`` when ``f`` is infinite
        there, as ``1/|t|`` at 0).
    """
    lowest, highest = float(ritz[0]), float(ritz[-1])
    kinks = [c for c in kinks if spectrum_lower < c < spectrum_upper]
    below = [c for c in kinks if c < lowest]
    above = [c for c in kinks if c > highest]
    reach = _REACH_FACTOR * max(abs(lowest), abs(highest)) + 2.0 * float(beta[-1])
    lanczos = _Lanczos(alpha, beta, f, coefficients)
    total = 0.0
    if below:
        start = max(below)
        extent = min(reach, start - spectrum_lower)
        total += np.sqrt(_one_side(lanczos, start, -1.0, extent))
    if above:
        start = min(above)
        extent = min(reach, spectrum_upper - start)
        total += np.sqrt(_one_side(lanczos, start, 1.0, extent))
    for c in kinks:
        if lowest <= c <= highest:
            total += _inside_gap(lanczos, ritz, c)
    return _finite_or_inf(total)


def _finite_or_inf(total: float) -> float:
    return float(total) if np.isfinite(total) else np.inf


@dataclass(frozen=True)
class _Lanczos:
    """What the bound knows: the tridiagonal (``alpha``, ``beta``), ``f`` and ``f(T) e_1``."""

    alpha: np.ndarray
    beta: np.ndarray
    f: Callable[[np.ndarray], np.ndarray]
    coefficients: np.ndarray

    def log_christoffel_and_error(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return ``log lambda_m(t)`` and ``log |f(t) - p(t)|^2`` (scaled three-term recurrence)."""
        alpha, beta, coefficients = self.alpha, self.beta, self.coefficients
        previous = np.zeros_like(t)
        current = np.ones_like(t)
        squares = np.ones_like(t)
        polynomial = coefficients[0] * current
        log_scale = np.zeros_like(t)
        for k in range(1, alpha.size):
            below = beta[k - 2] * previous if k >= 2 else 0.0
            previous, current = current, ((t - alpha[k - 1]) * current - below) / beta[k - 1]
            squares += current * current
            polynomial += coefficients[k] * current
            large = np.abs(current) > _RESCALE
            if np.any(large):
                factor = np.where(large, 1.0 / _RESCALE, 1.0)
                current *= factor
                previous *= factor
                squares *= factor * factor
                polynomial *= factor
                log_scale += np.where(large, _LOG_RESCALE, 0.0)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            values = np.asarray(self.f(t), dtype=np.float64)
            difference = np.abs(values * np.exp(-log_scale) - polynomial)
            log_h = 2.0 * (np.log(difference) + log_scale)
            log_christoffel = -np.log(squares) - 2.0 * log_scale
        # NaN (f infinite where p is scaled) and +inf count as an unbounded error; an exact
        # zero gets a finite logarithm far below any double, so that differences stay finite.
        log_h = np.maximum(np.where(np.isnan(log_h), np.inf, log_h), _LOG_ZERO)
        return log_christoffel, log_h


def _inside_gap(lanczos: _Lanczos, ritz: np.ndarray, kink: float) -> float:
    """Return the largest error one eigenvalue in the Ritz gap around ``kink`` can cause."""
    index = int(np.searchsorted(ritz, kink))
    left = float(ritz[max(index - 1, 0)])
    right = float(ritz[min(index, ritz.size - 1)])
    fractions = np.geomspace(_SMALLEST_DISTANCE, 1.0, _GRID_POINTS // 4)
    points = [kink - (kink - left) * fractions, kink + (right - kink) * fractions]
    points += [left + (kink - left) * fractions, right - (right - kink) * fractions]
    t = np.unique(np.concatenate([[kink], *points]))
    with np.errstate(divide="ignore", invalid="ignore"):
        singular = not np.isfinite(lanczos.f(np.asarray([kink], dtype=np.float64))[0])
    if singular:
        # At a singularity of f (1/|t| at 0) one eigenvalue near it could cause any error; f
        # is assumed finite on the spectrum, taken here as: no eigenvalue closer to it than
        # half the distance of the nearest Ritz value.
        t = t[np.abs(t - kink) >= 0.5 * min(kink - left, right - kink)]
    log_christoffel, log_h = lanczos.log_christoffel_and_error(t)
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.sqrt(np.exp(np.max(log_christoffel + log_h))))


def _one_side(lanczos: _Lanczos, start: float, direction: float, extent: float) -> float:
    """Return the squared bound over ``start + direction * [0, extent]``."""
    distances = np.geomspace(_SMALLEST_DISTANCE * extent, extent, _GRID_POINTS)
    t = start + direction * np.concatenate([[0.0], distances])
    log_christoffel, log_h = lanczos.log_christoffel_and_error(t)
    log_g = np.maximum.accumulate(log_h)
    if not np.isfinite(log_g[-1]):
        return np.inf
    # Cell by cell, with log lambda_m and log G linear in between: the integral of lambda dG.
    rise = np.diff(log_g)
    decay = -np.diff(log_christoffel)
    exponent = rise - decay
    with np.errstate(over="ignore", invalid="ignore"):
        growth = np.where(
            np.abs(exponent) < 1e-8, 1.0, np.expm1(exponent) / np.where(exponent, exponent, 1.0)
        )
        cells = np.exp(log_christoffel[:-1] + log_g[:-1]) * rise * growth
        at_start = np.exp(log_christoffel[0] + log_g[0])
        total = at_start + float(np.sum(np.where(rise > 0.0, cells, 0.0)))
    return _finite_or_inf(total)
