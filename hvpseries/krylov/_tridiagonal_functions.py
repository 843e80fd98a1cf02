"""f(T) e_1 in O(q m) for the |t|^-1-type functions of abs_inv and a symmetric tridiagonal T.

The Lanczos driver (:func:`hvpseries.krylov.funm_lanczos`) evaluates ``f(T_m) e_1`` at every
checkpoint. For a general ``f`` that takes a full tridiagonal eigendecomposition, ``O(m^2)``
work and more; for the two functions of :func:`hvpseries.abs_inv` the rational quadrature of
:func:`hvpseries.krylov._rational.quadrature_nodes` turns it into ``q`` shifted tridiagonal
solves of ``O(m)`` each. All of this is host work on float64 NumPy arrays on purpose: ``T``
is small (its size is the number of Lanczos steps) and lives on the host.
"""

from __future__ import annotations

import math

import numpy as np

from ._rational import quadrature_nodes

__all__ = ["AbsInvFunction", "SignFunction", "gershgorin_magnitude", "smallest_magnitude_bound"]

#: Set to False to make :meth:`AbsInvFunction.tridiagonal_apply` decline (always fall back to
#: the eigendecomposition); a switch for benchmarks and tests that compare the two paths.
FAST_PATH = True

# The most accurate rule asked of quadrature_nodes; below this its nodes no longer pay off and
# the caller falls back to the eigendecomposition (whose accuracy is then the limit anyway).
_FINEST_TOLERANCE = 1e-15
# quadrature_nodes reaches about ten times its `tolerance` in the worst case (the damped
# kernel with d > 0), so the rule is asked for a tenth of the accuracy wanted.
_RULE_SAFETY = 0.1
# Growth of the half-width of the window searched for the Ritz values nearest 0.
_WINDOW_GROWTH = 4.0


class AbsInvFunction:
    r"""The scalar function ``1 / (|t| + d)`` or ``(t^2 + d)^{-1/2}`` with a fast tridiagonal path.

    Calling the object applies ``f`` elementwise to a NumPy array (as the plain functions do);
    :meth:`tridiagonal_apply` computes ``f(T) e_1`` for a symmetric tridiagonal ``T`` without
    an eigendecomposition.

    Parameters
    ----------
    damping : float
        ``d >= 0``.
    variant : {"damped", "quasi-damped"}
        ``"damped"``: ``f(t) = 1 / (|t| + d)``; ``"quasi-damped"``: ``f(t) = (t^2 + d)^{-1/2}``.

    Notes
    -----
    Both functions are functions of ``t^2`` with the quadrature representation
    ``f(t) ~ sum_j w_j / (t^2 + s_j) + c`` (relative accuracy ``tolerance`` for
    ``lower <= |t| <= upper``, see :func:`hvpseries.krylov._rational.quadrature_nodes`), so

    .. math::

        f(T) e_1 \approx \sum_j w_j (T^2 + s_j I)^{-1} e_1 + c\, e_1, \qquad
        (T^2 + s I)^{-1} e_1 = \frac{1}{\sqrt{s}}
            \operatorname{Im}\,(T - i \sqrt{s}\, I)^{-1} e_1 ,

    the second identity from ``1/(t^2 + s) = Im(1/(t - i sqrt(s))) / sqrt(s)``. Each complex
    tridiagonal system is solved by LAPACK ``zgtsv`` (Gaussian elimination with partial
    pivoting, ``O(m)``). Solving with the shifted square ``T^2 + s I`` (pentadiagonal,
    positive definite) would be as cheap but squares the condition number: its error is
    about ``eps ||T||^2 / lambda_min^3`` against ``eps ||T|| / lambda_min^2`` for the
    eigendecomposition, whereas the complex factor ``T - i sqrt(s) I`` has the condition
    number of ``T`` at most and matches the eigendecomposition's accuracy.

    The interval ``[lower, upper]`` of the rule must contain every ``|theta|``, ``theta`` an
    eigenvalue of ``T``: ``upper`` is the Gershgorin bound (:func:`gershgorin_magnitude`) and
    ``lower`` comes from bisection for the eigenvalues nearest 0
    (:func:`smallest_magnitude_bound`).

    Examples
    --------
    >>> import numpy as np
    >>> f = AbsInvFunction(0.5, "damped")
    >>> f(np.array([-1.0, 0.0, 2.0]))
    array([0.66666667, 2.        , 0.4       ])
    >>> alpha, off = np.array([-1.0, 0.5, 2.0]), np.array([0.3, 0.7])
    >>> T = np.diag(alpha) + np.diag(off, 1) + np.diag(off, -1)
    >>> theta, V = np.linalg.eigh(T)
    >>> exact = V @ (f(theta) * V[0])
    >>> y = f.tridiagonal_apply(alpha, off, tolerance=1e-12)
    >>> bool(np.linalg.norm(y - exact) <= 1e-12 * np.linalg.norm(exact))
    True
    """

    def __init__(self, damping: float, variant: str) -> None:
        if variant not in ("damped", "quasi-damped"):
            message = f"variant must be 'damped' or 'quasi-damped', got {variant!r}"
            raise ValueError(message)
        damping = float(damping)
        if not (math.isfinite(damping) and damping >= 0):
            message = f"damping must be finite and >= 0, got {damping!r}"
            raise ValueError(message)
        self.damping = damping
        self.variant = variant
        # Where the last search found the Ritz value nearest 0: only a starting point for the
        # next search (the bound depends on it only within the bisection tolerance).
        self._hint: float | None = None

    def __repr__(self) -> str:
        return f"AbsInvFunction(damping={self.damping!r}, variant={self.variant!r})"

    @property
    def kinks(self) -> tuple[float, ...]:
        """Where ``f`` is not analytic, or nearly so: 0.

        ``1/(|t| + d)`` has a kink at 0; ``(t^2 + d)^{-1/2}`` is analytic for ``d > 0`` but its
        poles ``+-i sqrt(d)`` lie close to 0, and beyond them a polynomial follows it as
        poorly as across a kink (fuzz: SUCCESS up to 2.9x above the tolerance without it).
        """
        return (0.0,)

    def __call__(self, t: np.ndarray) -> np.ndarray:
        """Return ``f(t)`` elementwise (``inf`` at a singularity, without a warning)."""
        t = np.asarray(t)
        with np.errstate(divide="ignore"):
            if self.variant == "damped":
                return 1.0 / (np.abs(t) + self.damping)
            return 1.0 / np.sqrt(t * t + self.damping)

    def tridiagonal_apply(
        self, alpha: np.ndarray, off: np.ndarray, *, tolerance: float
    ) -> np.ndarray | None:
        """Return ``f(T) e_1`` for the symmetric tridiagonal ``T``, or ``None`` to decline.

        Parameters
        ----------
        alpha : numpy.ndarray, shape (m,)
            The diagonal of ``T``.
        off : numpy.ndarray, shape (m - 1,)
            The off-diagonal of ``T``.
        tolerance : float
            The relative accuracy wanted, ``||y - f(T) e_1|| <= tolerance ||f(T) e_1||``
            (up to rounding, which is of the order of the eigendecomposition's).

        Returns
        -------
        numpy.ndarray or None
            ``y``, shape ``(m,)``, float64; ``None`` when this path is switched off
            (``FAST_PATH``), when ``tolerance`` is below what the quadrature reaches
            (about ``1e-14``), when ``T`` is not finite or its entries under- or overflow
            when squared, or when ``d = 0`` and ``T`` is singular to working precision
            (``T = 0`` included). The caller then uses the eigendecomposition.
        """
        alpha = np.asarray(alpha, dtype=np.float64)
        off = np.asarray(off, dtype=np.float64)
        wanted = _RULE_SAFETY * tolerance
        if not FAST_PATH or not wanted >= _FINEST_TOLERANCE:
            return None
        if not (np.all(np.isfinite(alpha)) and np.all(np.isfinite(off))):
            return None
        upper = gershgorin_magnitude(alpha, off)
        if upper == 0.0:  # T = 0: f(T) e_1 = f(0) e_1, unless f is singular at 0
            value = float(self(np.zeros(1))[0])
            if not math.isfinite(value):
                return None
            y = np.zeros(alpha.size)
            y[0] = value
            return y
        lower = smallest_magnitude_bound(alpha, off, upper=upper, start=self._hint)
        self._hint = lower if lower > 0 else None
        if lower == 0.0 and self.damping == 0.0:
            return None  # f is singular on the spectrum of T (to working precision)
        if lower > 0 and not math.isfinite(upper / lower):
            return None  # a range of magnitudes beyond floating point (subnormal entries)
        try:
            rule = quadrature_nodes(
                damping=self.damping,
                variant=self.variant,
                lower=lower,
                upper=upper,
                tolerance=wanted,
            )
        except (OverflowError, ValueError):  # node counts beyond floating point: subnormal T
            return None
        usable = np.all(np.isfinite(rule.weights)) and math.isfinite(rule.rhs_weight)
        if not (usable and np.all(rule.shifts > 0) and np.all(np.isfinite(rule.shifts))):
            return None  # the scales of T under- or overflow when squared
        with np.errstate(all="ignore"):
            y = _resolvent_sum(alpha, off, rule.shifts, rule.weights, rule.rhs_weight)
        return y if np.all(np.isfinite(y)) else None


class SignFunction:
    """``sign(t)`` elementwise, declaring its jump at 0 (see :func:`funm_lanczos`'s ``kinks``).

    Examples
    --------
    >>> import numpy as np
    >>> SignFunction()(np.array([-2.0, 0.0, 3.0]))
    array([-1.,  0.,  1.])
    """

    kinks = (0.0,)

    def __repr__(self) -> str:
        return "SignFunction()"

    def __call__(self, t: np.ndarray) -> np.ndarray:
        """Return ``sign(t)`` elementwise."""
        return np.sign(t)


def gershgorin_magnitude(alpha: np.ndarray, off: np.ndarray) -> float:
    """Return an upper bound on ``|theta|`` over the eigenvalues of a symmetric tridiagonal.

    Parameters
    ----------
    alpha, off : numpy.ndarray
        The diagonal ``(m,)`` and off-diagonal ``(m - 1,)``.

    Returns
    -------
    float
        ``max_i |alpha_i| + |off_{i-1}| + |off_i|`` (the Gershgorin bound), enlarged by a few
        units in the last place.

    Examples
    --------
    >>> gershgorin_magnitude(np.array([2.0, -3.0]), np.array([1.0]))
    4.0000000000000036
    """
    radius = np.abs(alpha).copy()
    if off.size:
        radius[:-1] += np.abs(off)
        radius[1:] += np.abs(off)
    return float(np.max(radius) * (1.0 + 4.0 * np.finfo(np.float64).eps))


def smallest_magnitude_bound(
    alpha: np.ndarray, off: np.ndarray, *, upper: float, start: float | None = None
) -> float:
    """Return a lower bound on ``min |theta|`` over the eigenvalues of a symmetric tridiagonal.

    Parameters
    ----------
    alpha, off : numpy.ndarray
        The diagonal ``(m,)`` and off-diagonal ``(m - 1,)``.
    upper : float
        An upper bound on every ``|theta|`` (e.g. :func:`gershgorin_magnitude`).
    start : float, optional
        A guess of ``min |theta|`` (e.g. from a previous, shorter ``T``); the cost depends on
        it, the result only within the bisection tolerance.

    Returns
    -------
    float
        ``lower >= 0`` with ``lower <= |theta|`` for every eigenvalue (up to the bisection's
        backward error, which is subtracted); 0 when ``T`` is singular to working precision.

    Notes
    -----
    Bisection with Sturm counts (LAPACK ``stebz`` through
    :func:`scipy.linalg.eigvalsh_tridiagonal` with ``select="v"``) finds all eigenvalues in a
    window ``(-r, r]`` at ``O(m)`` cost per count; ``r`` starts small and grows by a factor of
    4 until the window holds an eigenvalue, so only a few eigenvalues are ever computed. The
    computed eigenvalues are exact for a matrix within a few ``eps ||T||`` of ``T`` (Kahan's
    backward stability of the Sturm count), so that much is subtracted as a safety margin.

    Examples
    --------
    >>> alpha, off = np.array([1.0, -2.0, 3.0]), np.array([0.5, 0.5])
    >>> bound = smallest_magnitude_bound(alpha, off, upper=gershgorin_magnitude(alpha, off))
    >>> T = np.diag(alpha) + np.diag(off, 1) + np.diag(off, -1)
    >>> exact = np.min(np.abs(np.linalg.eigvalsh(T)))
    >>> bool(exact - 1e-13 <= bound <= exact)
    True
    """
    from scipy.linalg import eigvalsh_tridiagonal

    eps = np.finfo(np.float64).eps
    if alpha.size == 1:
        return float(abs(alpha[0]))
    absolute = eps * upper  # bisection tolerance: as accurate as the count allows
    margin = 16.0 * eps * upper + 2.0 * absolute
    radius = 4.0 * margin
    if not radius >= np.finfo(np.float64).tiny:
        # ||T|| is so small that eps ||T|| is subnormal (or zero): no window can be resolved
        # (LAPACK refuses an empty one), and 0 is a valid bound.
        return 0.0
    if start is not None and start > radius:
        # one step below the guess, so that the first window rarely holds many eigenvalues
        radius = start / _WINDOW_GROWTH
    while True:
        radius = min(radius, 2.0 * upper)
        found = eigvalsh_tridiagonal(
            alpha, off, select="v", select_range=(-radius, radius), tol=absolute
        )
        if found.size:
            return max(float(np.min(np.abs(found))) - margin, 0.0)
        if radius >= 2.0 * upper:  # cannot happen for a correct `upper`: stay safe anyway
            return 0.0
        radius *= _WINDOW_GROWTH


def _resolvent_sum(
    alpha: np.ndarray,
    off: np.ndarray,
    shifts: np.ndarray,
    weights: np.ndarray,
    rhs_weight: float,
) -> np.ndarray:
    """Return ``sum_j w_j (T^2 + s_j I)^-1 e_1 + rhs_weight e_1`` by complex tridiagonal solves."""
    from scipy.linalg.lapack import zgtsv

    m = alpha.size
    if m == 1:  # a scalar (zgtsv wants m >= 2)
        value = float(np.sum(weights / (alpha[0] * alpha[0] + shifts))) + rhs_weight
        return np.array([value])
    y = np.zeros(m)
    y[0] = rhs_weight
    sub = off.astype(np.complex128)
    for shift, weight in zip(shifts, weights, strict=True):
        sigma = math.sqrt(float(shift))
        rhs = np.zeros((m, 1), dtype=np.complex128)
        rhs[0, 0] = 1.0
        # (T^2 + s) e_1-solve = Im[(T - i sqrt(s))^-1 e_1] / sqrt(s); zgtsv overwrites its
        # inputs only where told to, so `sub` is reused across the shifts.
        *_, solution, info = zgtsv(sub, alpha - 1j * sigma, sub, rhs, overwrite_b=True)
        if info != 0:  # an exactly singular pivot: impossible for sigma > 0 unless T is not finite
            message = f"zgtsv failed with info={info} for shift {shift!r}"
            raise FloatingPointError(message)
        y += (weight / sigma) * solution[:, 0].imag
    return y
