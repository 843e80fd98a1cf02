"""``abs_inv``: the square-root/inverse series for ``(|A| + d I)^-1 b``, ``(A^2 + d I)^-1/2 b``.

What :func:`abs_inv`'s docstring leaves to this note and to the user guide's page on the
series (which derives it):

- ``scale="auto"``: 20 Lanczos steps on ``A`` (:func:`hvpseries.spectral_bounds`) give the top
  Ritz value ``theta`` and an outer bound ``U >= max |lambda|``;
  ``V = max(theta^2 + s, 1.001 (U^2 + s) / 2)`` is tight (fewer terms than ``V = U^2``) and
  keeps the convergence condition whenever ``U`` is a true bound.
- Cost: with ``V ~ lambda_max^2`` the series needs about ``kappa(A)^2 log(1/eps)`` terms, where
  Krylov methods (:func:`hvpseries.abs_inv`) need ``kappa(A) log(1/eps)`` matvecs.
- With ``d > 0`` a zero eigenvalue of ``A`` converges only like ``N^-1/2`` in the damped
  variant: ``acceleration="tail"`` or ``"wynn-sablonniere"`` help, ``"quasi-damped"`` avoids it.
- ``paper=True``: ``V = max(V_prev, ||A^2 b|| / ||b||)`` with ``V_prev`` the ``scale`` passed,
  and the order-1 Wynn value returned even where its estimate is higher than the plain sum's
  (else it is returned only where its estimate is lower).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from .._core._result import SolveResult
from .._operators._base import LinearOperator
from .._solve._problem import Problem, finish
from ._coefficients import CoefficientStream
from ._engine import SeriesSetup, pose_series, run
from ._options import SeriesOptions, check_damping, check_variant, resolve_options
from ._scale import choose_scale

__all__ = ["abs_inv", "paper_options", "run_abs_inv"]

PAPER_NUM_TERMS = 20


def squared_apply(operator: LinearOperator) -> Callable[[Any], Any]:
    """``v -> A (A v)`` for a vector or a block (one matmat per product)."""

    def apply(v: Any) -> Any:
        if v.ndim == 2:
            return operator.matmat(operator.matmat(v))
        return operator.matvec(operator.matvec(v))

    return apply


def abs_inv(
    A: Any,
    b: Any,
    *,
    damping: float = 0.0,
    variant: str = "damped",
    num_terms: int | None = None,
    rtol: float | None = None,
    atol: float = 0.0,
    maxiter: int | None = None,
    scale: float | str = "auto",
    acceleration: str | None = "wynn",
    order: int = 1,
    callback: Callable[[Any], Any] | None = None,
    throw: bool = False,
    paper: bool = False,
    options: SeriesOptions | None = None,
) -> SolveResult:
    r"""Apply ``(|A| + d I)^-1`` or ``(A^2 + d I)^-1/2`` to ``b`` by the square-root/inverse series.

    The paper's saddle-free Newton direction [1]_, ``|A| = (A^2)^{1/2}``, for indefinite ``A``.

    Parameters
    ----------
    A : LinearOperator or matrix
        Symmetric (anything :func:`hvpseries.aslinearoperator` accepts): assumed, an untagged
        matrix-free operator is probed once, and one tagged ``symmetric=False`` is refused.
    b : array
        A vector ``(n,)`` or a block ``(n, k)`` (one matmat per product, estimates per column).
    damping : float, default 0.0
        ``d >= 0``. With ``d = 0`` both variants compute ``|A|^-1 b`` (``A`` non-singular).
    variant : {"damped", "quasi-damped"}, default "damped"
        ``"damped"``: ``(|A| + d I)^-1 b`` (Levenberg-Marquardt damping of ``|A|``, the paper's
        choice); ``"quasi-damped"``: ``(A^2 + d I)^-1/2 b`` (damping inside the root).
    num_terms, maxiter, acceleration, order, options
        Budget and accelerator as in :class:`SeriesOptions` (default: order-1 vector Wynn
        epsilon), or ``options``: those and ``scale`` as one value (the keywords then keep
        their defaults). ``N`` terms cost ``2 (N - 1)`` products with ``A``.
    rtol, atol : float, optional
        Stop when, for every column, the error estimate is ``<= max(rtol * ||x||, atol)``.
        When neither ``num_terms`` nor ``rtol`` is given, ``rtol=1e-6``.
    scale : float or {"auto", "lower_bound"}, default "auto"
        ``V`` in ``Z = I - (A^2 + s I) / V``. ``"auto"``: tight and safe, from 20 Lanczos steps
        on ``A`` (in ``n_matvec``). ``"lower_bound"``: ``V = ||A^2 b|| / ||b|| (+ s)``, free but
        *unsafe* (the series can diverge: detected). A float: ``V`` (``paper=True``: ``V_prev``).
    callback, throw
        ``callback(xk)`` after each term, with the plain partial sum; ``throw=True`` raises
        :class:`hvpseries.ConvergenceError` instead of returning an unconverged result.
    paper : bool, default False
        The published rule (the user guide's series page): damped, ``num_terms=20`` unless
        given, no ``rtol``/``atol``, order-1 Wynn always returned, ``scale`` taken as ``V_prev``
        (100 for ``"auto"``, 0 for ``"lower_bound"``; pass ``info["scale"]`` on).

    Returns
    -------
    SolveResult
        ``x`` (library, device and dtype of ``b``), ``status``, ``n_matvec`` (Lanczos and probe
        included, ``k`` columns count ``k``), ``n_iter`` (terms), ``error_estimate`` and
        ``relative_error_estimate`` (floats, NumPy arrays per column) and ``info`` with

        - ``scale`` (``V``), ``scale_source`` (``"auto"``, ``"lower_bound"``, ``"user"``,
          ``"paper"``, or ``"not needed"`` for a zero or non-finite ``b``);
        - ``variant``, ``damping``, ``paper``, ``acceleration``, ``order`` (None without
          acceleration); ``coefficients`` (``"inv_sqrt"``, or ``"damped"`` and ``delta``);
        - ``returned`` (``"accelerated"`` or ``"plain"``; a list for a block, None for a
          non-finite ``b``), ``plain_error_estimate`` (of the plain sum; not for a non-finite
          ``b``), ``ratio`` (the contraction per term, per column; not for a zero ``b`` either);
        - ``advice`` (what to do, None when converged); ``rhs_scale`` (only for a rescaled ``b``).

    Raises
    ------
    ValueError
        For ``damping < 0``, an unknown ``variant``, bad controls (:class:`SeriesOptions`) or
        tolerances, shape/device mismatches, a non-symmetric operator, or a conflict with paper.
    TypeError
        For arguments of the wrong type, mixed array libraries, or ``options`` with keywords.

    Notes
    -----
    With ``M = A^2 + s I`` (``s = d`` for ``"quasi-damped"``, else 0) and ``Z = I - M / V``,

    .. math:: (A^2 + d I)^{-1/2} b = V^{-1/2} \sum_{n \ge 0} \binom{2n}{n} 4^{-n} Z^n b, \qquad
              (|A| + d I)^{-1} b = V^{-1/2} \sum_{n \ge 0} c_n(\delta) Z^n b,

    ``delta = d / sqrt(V)``, ``c_n`` the stable coefficients of ``1 / (sqrt(1 - x) + delta)``
    (:func:`coefficients`). It converges iff the eigenvalues ``1 - (lambda_i^2 + s) / V`` of
    ``Z`` lie in ``[-1, 1)`` (``[-1, 1]`` damped with ``d > 0``): ``V >= (lambda_max^2 + s) / 2``.
    Cost (about ``kappa(A)^2 log(1/eps)`` terms), the ``"auto"`` scale and the slow ``N^-1/2``
    convergence on a zero eigenvalue with ``d > 0`` (``"quasi-damped"`` avoids it): the user
    guide's series page; stopping, estimates (not bounds): :class:`SeriesOptions`.

    References
    ----------
    .. [1] E. T. Oldewage, R. M. Clarke, J. M. Hernandez-Lobato, "Series of Hessian-vector
       products for tractable saddle-free Newton optimisation of neural networks", TMLR (2024).

    Examples
    --------
    >>> import numpy as np
    >>> from hvpseries import series
    >>> A = np.diag([-2.0, -1.0, 0.5, 1.0, 3.0])
    >>> result = series.abs_inv(A, np.ones(5), rtol=1e-8)
    >>> result.converged, result.info["returned"], np.round(result.x, 6)
    (True, 'accelerated', array([0.5     , 1.      , 2.      , 1.      , 0.333333]))
    >>> np.round(series.abs_inv(A, np.ones(5), damping=1.0, rtol=1e-8).x, 6)
    array([0.333333, 0.5     , 0.666667, 0.5     , 0.25    ])
    """
    options = resolve_options(options, num_terms, maxiter, scale, acceleration, order)
    d = check_damping(damping)
    check_variant(variant)
    if paper:
        options = paper_options(options, variant=variant, rtol=rtol, atol=atol)
    problem = pose_series(A, b, method="series.abs_inv", rtol=rtol, atol=atol, callback=callback)
    raw = run_abs_inv(problem, options, damping=d, variant=variant, paper=paper)
    return finish(problem, raw, throw=throw)


def run_abs_inv(
    problem: Problem,
    options: SeriesOptions,
    *,
    damping: float = 0.0,
    variant: str = "damped",
    paper: bool = False,
) -> SolveResult:
    """Run the series of :func:`abs_inv` on a posed problem; the result is the raw one.

    ``damping`` and ``variant`` are validated (:func:`check_damping`, :func:`check_variant`);
    with ``paper=True``, ``options`` are those :func:`paper_options` returns. Finish the
    result with :func:`hvpseries._solve._problem.finish`.
    """
    operator = problem.operator
    shift = damping if variant == "quasi-damped" else 0.0
    apply = squared_apply(operator)
    choice = choose_scale(
        problem, options.scale, apply=apply, squared=True, shift=shift, paper=paper
    )
    V = choice.value
    if variant == "damped" and damping > 0:
        stream = CoefficientStream("damped", delta=damping / math.sqrt(V))
    else:
        stream = CoefficientStream("inv_sqrt")
    info = {"variant": variant, "damping": damping, "scale_source": choice.source, "paper": paper}
    setup = SeriesSetup(
        apply=apply,
        matvecs_per_apply=2,
        scale=V,
        shift=shift,
        stream=stream,
        prefactor=1.0 / math.sqrt(V),
        n_matvec_before=choice.n_matvec,
        first_product=choice.first_product,
        info=info,
    )
    return run(problem, setup, options, safeguard=not paper)


def paper_options(options: SeriesOptions, *, variant: str, rtol: Any, atol: Any) -> SeriesOptions:
    """Return ``options`` for ``paper=True``: ``num_terms=20`` unless given.

    Raises
    ------
    ValueError
        If ``variant``, the tolerances or the accelerator conflict with the paper's rule
        (damped series, a fixed number of terms, order-1 Wynn).
    """
    _check_paper(variant, rtol, atol, options.acceleration, options.order)
    if options.num_terms is None:
        return dataclasses.replace(options, num_terms=PAPER_NUM_TERMS)
    return options


def _check_paper(variant: str, rtol: Any, atol: Any, acceleration: Any, order: Any) -> None:
    conflicts = []
    if variant != "damped":
        conflicts.append(f"variant={variant!r}")
    if rtol is not None or atol != 0:
        conflicts.append("rtol/atol")
    if acceleration != "wynn":
        conflicts.append(f"acceleration={acceleration!r}")
    if order != 1:
        conflicts.append(f"order={order!r}")
    if conflicts:
        message = (
            "paper=True fixes the published rule (damped series, a fixed number of terms, "
            f"order-1 Wynn); it conflicts with {', '.join(conflicts)}. Drop paper=True to "
            "choose these yourself"
        )
        raise ValueError(message)
