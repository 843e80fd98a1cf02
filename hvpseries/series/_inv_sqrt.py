"""``inv_sqrt`` and ``sqrt``: the binomial series for ``A^-1/2 b`` and ``A^1/2 b``, ``A`` SPD."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .._core._result import SolveResult
from ._linear import run_linear_series, solve_linear_series
from ._options import SeriesOptions, resolve_options

__all__ = ["inv_sqrt", "run_inv_sqrt", "run_sqrt", "sqrt"]


def inv_sqrt(
    A: Any,
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
    options: SeriesOptions | None = None,
) -> SolveResult:
    r"""Apply ``(A + d I)^-1/2`` to ``b`` for a symmetric positive definite ``A`` (series).

    One product with ``A`` per term.

    Parameters
    ----------
    A : LinearOperator or matrix
        Symmetric positive definite operator (assumed, not checked; operators tagged
        ``symmetric=False`` or ``psd=False`` are refused).
    b : array
        A vector ``(n,)`` or a block ``(n, k)``.
    damping : float, default 0.0
        ``d >= 0`` added to ``A``.
    num_terms, rtol, atol, maxiter, acceleration, order, callback, throw, options
        As in :func:`abs_inv`: a fixed budget of ``num_terms`` terms and/or a stop when every
        column's error estimate is ``<= max(rtol ||x||, atol)`` (``rtol=1e-6`` when neither
        is given; ``maxiter`` defaults to 1000 terms); see :class:`SeriesOptions`.
    scale : float or {"auto", "lower_bound"}, default "auto"
        ``V`` in ``Z = I - (A + d I) / V``. ``"auto"``: 20 Lanczos steps bound the spectrum by
        ``[lower, upper]``; ``V = (lower + upper) / 2`` when ``lower > 0`` (the optimal rate),
        else ``V = max(theta_max, 1.001 upper / 2)`` with ``theta_max`` the largest Ritz value
        (both shifted by ``d``). ``"lower_bound"``: ``||A b|| / ||b|| + d`` (unsafe). A
        float: ``V``.

    Returns
    -------
    SolveResult
        As :func:`abs_inv`, with ``info`` keys ``scale``, ``scale_source``, ``damping``,
        ``coefficients`` (``"inv_sqrt"``), ``acceleration``, ``order``, ``returned``,
        ``plain_error_estimate``, ``ratio``, ``advice`` and ``rhs_scale`` as there (no
        ``variant``, ``paper`` or ``delta``), and where they apply ``classification_applies``
        (products with ``A`` spent telling a negative eigenvalue from too small a scale when
        the terms grew) and ``smallest_ritz_value`` (``Status.INDEFINITE`` from Lanczos, when
        ``x`` is all NaN). ``Status.INDEFINITE`` if Lanczos or the terms reveal an eigenvalue
        of ``A + d I`` below zero.

    Raises
    ------
    ValueError, TypeError
        As :func:`abs_inv`.

    Notes
    -----
    ``(A + d I)^{-1/2} b = V^{-1/2} \sum_n \binom{2n}{n} 4^{-n} Z^n b`` converges iff the
    eigenvalues ``mu`` of ``A + d I`` satisfy ``0 < mu <= 2V``, with rate
    ``max |1 - mu / V|``: about ``kappa(A) log(1/eps)`` terms.

    Examples
    --------
    >>> import numpy as np
    >>> from hvpseries import series
    >>> A = np.diag([1.0, 4.0, 9.0])
    >>> np.round(series.inv_sqrt(A, np.eye(3)[:, :2], rtol=1e-10).x, 8)  # two columns at once
    array([[1. , 0. ],
           [0. , 0.5],
           [0. , 0. ]])
    """
    options = resolve_options(options, num_terms, maxiter, scale, acceleration, order)
    return solve_linear_series(
        "inv_sqrt", A, b, damping, options, rtol=rtol, atol=atol, callback=callback, throw=throw
    )


def sqrt(
    A: Any,
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
    options: SeriesOptions | None = None,
) -> SolveResult:
    r"""Apply ``(A + d I)^1/2`` to ``b`` for a symmetric positive semi-definite ``A`` (series).

    One product with ``A`` per term.

    Parameters
    ----------
    A : LinearOperator or matrix
        Symmetric positive semi-definite operator.
    b, damping, num_terms, rtol, atol, maxiter, scale, acceleration, order, callback, throw, options
        As in :func:`inv_sqrt`.

    Returns
    -------
    SolveResult
        As :func:`inv_sqrt`, with ``info["coefficients"] == "sqrt"``.

    Notes
    -----
    ``(A + d I)^{1/2} b = V^{1/2} \sum_n s_n Z^n b`` with ``s_n`` the coefficients of
    ``sqrt(1 - x)`` (``1, -1/2, -1/8, ...``). Their magnitudes decay like ``n^{-3/2}``, so the
    series also converges (slowly) on a zero eigenvalue.

    Examples
    --------
    >>> import numpy as np
    >>> from hvpseries import series
    >>> A = np.diag([0.0, 3.0, 8.0])  # semi-definite; with damping=1, A + I = diag(1, 4, 9)
    >>> np.round(series.sqrt(A, np.ones(3), damping=1.0, rtol=1e-10).x, 8)
    array([1., 2., 3.])
    """
    options = resolve_options(options, num_terms, maxiter, scale, acceleration, order)
    return solve_linear_series(
        "sqrt", A, b, damping, options, rtol=rtol, atol=atol, callback=callback, throw=throw
    )


#: ``run_inv_sqrt(problem, options, *, damping=0.0)``, ``run_sqrt(...)``: the series of
#: :func:`inv_sqrt` and :func:`sqrt` on a posed problem, ``damping`` validated; the raw result
#: (for :func:`hvpseries._solve._problem.finish`), as the front end's ``method="series"`` runs
#: them. ``ValueError`` for an operator tagged ``psd=False`` (:func:`run_linear_series`).
run_inv_sqrt = functools.partial(run_linear_series, kind="inv_sqrt")
run_sqrt = functools.partial(run_linear_series, kind="sqrt")
