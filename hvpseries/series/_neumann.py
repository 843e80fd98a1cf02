"""``neumann``: the Neumann series for ``(A + d I)^-1 b``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .._core._result import SolveResult
from ._linear import run_linear_series, solve_linear_series
from ._options import SeriesOptions, resolve_options

__all__ = ["neumann", "run_neumann"]


def neumann(
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
    r"""Apply ``(A + d I)^-1`` to ``b`` by the Neumann series (symmetric positive definite ``A``).

    Parameters
    ----------
    A : LinearOperator or matrix
        Symmetric operator with spectrum in ``(-d, 2V - d)`` (assumed; operators tagged
        ``symmetric=False`` or ``psd=False`` are refused).
    b, damping, num_terms, rtol, atol, maxiter, scale, acceleration, order, callback, throw, options
        As in :func:`inv_sqrt` (``d`` is added to ``A``).

    Returns
    -------
    SolveResult
        As :func:`inv_sqrt`, with ``info["coefficients"] == "neumann"``;
        ``Status.INDEFINITE`` when an eigenvalue below ``-d`` is found.

    Notes
    -----
    ``(A + d I)^{-1} b = V^{-1} \sum_n Z^n b`` with ``Z = I - (A + d I) / V``: Richardson
    iteration. It converges iff every eigenvalue ``mu`` of ``A + d I`` is in ``(0, 2V)``, at the
    rate ``max |1 - mu / V|``: ``kappa(A) log(1/eps)`` terms, where conjugate gradients need
    ``sqrt(kappa) log(1/eps)``. Use it where inner products are unwelcome, or for few terms.

    Examples
    --------
    >>> import numpy as np
    >>> from hvpseries import series
    >>> A = np.diag([1.0, 2.0, 4.0])
    >>> result = series.neumann(A, np.ones(3), rtol=1e-10)
    >>> result.converged, np.round(result.x, 8)
    (True, array([1.  , 0.5 , 0.25]))
    """
    options = resolve_options(options, num_terms, maxiter, scale, acceleration, order)
    return solve_linear_series(
        "neumann", A, b, damping, options, rtol=rtol, atol=atol, callback=callback, throw=throw
    )


#: ``run_neumann(problem, options, *, damping=0.0)``: the series of :func:`neumann` on a posed
#: problem, as :data:`~hvpseries.series._inv_sqrt.run_inv_sqrt`.
run_neumann = functools.partial(run_linear_series, kind="neumann")
