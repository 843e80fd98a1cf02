"""``inv_sqrt`` and ``sqrt``: the binomial series for ``M^-1/2 b`` and ``M^1/2 b``, ``M`` SPD."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._core._result import SolveResult
from .._solve._rhs_scaling import scales_right_hand_side
from ._linear import solve_linear_series

__all__ = ["inv_sqrt", "sqrt"]


@scales_right_hand_side()
def inv_sqrt(
    M: Any,
    b: Any,
    *,
    damping: float = 0.0,
    num_terms: int | None = None,
    rtol: float | None = None,
    atol: float = 0.0,
    maxiter: int | None = None,
    scale: float | str = "auto",
    acceleration: str | None = "wynn",
    order: int = 1,
    callback: Callable[[Any], Any] | None = None,
    throw: bool = False,
) -> SolveResult:
    r"""Apply ``(M + d I)^-1/2`` to ``b`` for a symmetric positive definite ``M`` (series).

    One product with ``M`` per term.

    Parameters
    ----------
    M : LinearOperator or matrix
        Symmetric positive definite operator (assumed, not checked; operators tagged
        ``symmetric=False`` or ``psd=False`` are refused).
    b : array
        A vector ``(n,)`` or a block ``(n, k)``.
    damping : float, default 0.0
        ``d >= 0`` added to ``M``.
    num_terms, rtol, atol, maxiter, acceleration, order, callback, throw
        As in :func:`abs_inv`: a fixed budget of ``num_terms`` terms and/or a stop when every
        column's error estimate is ``<= max(rtol ||x||, atol)`` (``rtol=1e-6`` when neither
        is given; ``maxiter`` defaults to 1000 terms).
    scale : float or {"auto", "lower_bound"}, default "auto"
        ``V`` in ``Z = I - (M + d I) / V``. ``"auto"``: 20 Lanczos steps bound the spectrum by
        ``[lower, upper]``; ``V = (lower + upper) / 2`` when ``lower > 0`` (the optimal rate),
        else ``V = max(theta_max, 1.001 upper / 2)`` with ``theta_max`` the largest Ritz value
        (both shifted by ``d``). ``"lower_bound"``: ``||M b|| / ||b|| + d`` (unsafe). A
        float: ``V``.

    Returns
    -------
    SolveResult
        As :func:`abs_inv`. ``Status.INDEFINITE`` if Lanczos or the terms reveal an eigenvalue
        of ``M + d I`` below zero.

    Raises
    ------
    ValueError, TypeError
        As :func:`abs_inv`.

    Notes
    -----
    ``(M + d I)^{-1/2} b = V^{-1/2} \sum_n \binom{2n}{n} 4^{-n} Z^n b`` converges iff the
    eigenvalues ``mu`` of ``M + d I`` satisfy ``0 < mu <= 2V``, with rate
    ``max |1 - mu / V|``: about ``kappa(M) log(1/eps)`` terms.

    Examples
    --------
    >>> import numpy as np
    >>> from hvpseries import series
    >>> M = np.diag([1.0, 4.0, 9.0])
    >>> np.round(series.inv_sqrt(M, np.ones(3), rtol=1e-10).x, 8)
    array([1.        , 0.5       , 0.33333333])
    """
    return solve_linear_series(
        "series.inv_sqrt",
        "inv_sqrt",
        M,
        b,
        damping=damping,
        num_terms=num_terms,
        rtol=rtol,
        atol=atol,
        maxiter=maxiter,
        scale=scale,
        acceleration=acceleration,
        order=order,
        callback=callback,
        throw=throw,
    )


@scales_right_hand_side()
def sqrt(
    M: Any,
    b: Any,
    *,
    damping: float = 0.0,
    num_terms: int | None = None,
    rtol: float | None = None,
    atol: float = 0.0,
    maxiter: int | None = None,
    scale: float | str = "auto",
    acceleration: str | None = "wynn",
    order: int = 1,
    callback: Callable[[Any], Any] | None = None,
    throw: bool = False,
) -> SolveResult:
    r"""Apply ``(M + d I)^1/2`` to ``b`` for a symmetric positive semi-definite ``M`` (series).

    Parameters and result as :func:`inv_sqrt`; one product with ``M`` per term.

    Parameters
    ----------
    M : LinearOperator or matrix
        Symmetric positive semi-definite operator.
    b : array
        A vector ``(n,)`` or a block ``(n, k)``.
    damping : float, default 0.0
        ``d >= 0`` added to ``M``.
    num_terms, rtol, atol, maxiter, scale, acceleration, order, callback, throw
        As in :func:`inv_sqrt`.

    Returns
    -------
    SolveResult

    Notes
    -----
    ``(M + d I)^{1/2} b = V^{1/2} \sum_n s_n Z^n b`` with ``s_n`` the coefficients of
    ``sqrt(1 - x)`` (``1, -1/2, -1/8, ...``). Their magnitudes decay like ``n^{-3/2}``, so the
    series also converges (slowly) on a zero eigenvalue.

    Examples
    --------
    >>> import numpy as np
    >>> from hvpseries import series
    >>> M = np.diag([1.0, 4.0, 9.0])
    >>> np.round(series.sqrt(M, np.ones(3), rtol=1e-10).x, 8)
    array([1., 2., 3.])
    """
    return solve_linear_series(
        "series.sqrt",
        "sqrt",
        M,
        b,
        damping=damping,
        num_terms=num_terms,
        rtol=rtol,
        atol=atol,
        maxiter=maxiter,
        scale=scale,
        acceleration=acceleration,
        order=order,
        callback=callback,
        throw=throw,
    )
