"""``abs_inv``: the square-root/inverse series for ``(|A| + d I)^-1 b``, ``(A^2 + d I)^-1/2 b``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .._core._result import SolveResult
from .._operators._base import LinearOperator
from .._solve._rhs_scaling import scales_right_hand_side
from .._solve._validation import prepare_system, require_not_nonsymmetric
from ._arguments import check_damping, check_series_arguments
from ._coefficients import CoefficientStream
from ._engine import SeriesSetup, run_series, trivial_rhs
from ._scale import ScaleChoice, choose_scale

__all__ = ["abs_inv"]

_VARIANTS = ("damped", "quasi-damped")
PAPER_NUM_TERMS = 20


def squared_apply(operator: LinearOperator) -> Callable[[Any], Any]:
    """``v -> A (A v)`` for a vector or a block (one matmat per product)."""

    def apply(v: Any) -> Any:
        if v.ndim == 2:
            return operator._matmat(operator._matmat(v))
        return operator._matvec(operator._matvec(v))

    return apply


@scales_right_hand_side()
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
) -> SolveResult:
    r"""Apply ``(|A| + d I)^-1`` or ``(A^2 + d I)^-1/2`` to ``b`` by the square-root/inverse series.

    The saddle-free Newton direction of the paper: ``|A| = (A^2)^{1/2}`` for a symmetric,
    possibly indefinite ``A``, using only products with ``A`` (two per term).

    Parameters
    ----------
    A : LinearOperator or matrix
        Symmetric operator (anything :func:`hvpseries.aslinearoperator` accepts). The method
        assumes symmetry and does not check it; an operator tagged ``symmetric=False`` is refused.
    b : array
        Right-hand side, a vector ``(n,)`` or a block ``(n, k)`` (one matmat per product, error
        estimates per column).
    damping : float, default 0.0
        ``d >= 0``. With ``d = 0`` both variants compute ``|A|^-1 b``, which needs ``A``
        non-singular.
    variant : {"damped", "quasi-damped"}, default "damped"
        ``"damped"``: ``(|A| + d I)^-1 b`` (Levenberg-Marquardt damping of ``|A|``, the paper's
        choice); ``"quasi-damped"``: ``(A^2 + d I)^-1/2 b`` (damping inside the root).
    num_terms : int, optional
        Fixed budget of terms ``N`` (``2 (N - 1)`` products with ``A``), the paper's mode. With
        ``rtol`` also given, the run stops at whichever comes first.
    rtol, atol : float, optional
        Stop when, for every column, the error estimate is ``<= max(rtol * ||x||, atol)``.
        When neither ``num_terms`` nor ``rtol`` is given, ``rtol=1e-6``.
    maxiter : int, optional
        Most terms to sum when stopping on a tolerance (default 1000).
    scale : float or {"auto", "lower_bound"}, default "auto"
        The scale ``V`` of ``Z = I - (A^2 + s I) / V``. ``"auto"``: 20 Lanczos steps on ``A``
        (counted in ``n_matvec``) give the largest Ritz value ``theta`` (an inner bound,
        usually within a few percent of ``max |lambda|``) and an outer bound ``U``;
        ``V = max(theta^2 + s, 1.001 (U^2 + s) / 2)``, which is tight and still satisfies the
        convergence condition ``V >= (lambda_max^2 + s) / 2`` whenever ``U`` is a true bound.
        ``"lower_bound"``: ``V = ||A^2 b|| / ||b|| (+ s)``, free but *unsafe*: it can lie below
        ``lambda_max(A^2) / 2``, and then the series diverges (detected). A float: your ``V``.
        With ``paper=True`` a float is the previous scale ``V_prev`` of the paper's running max.
    acceleration : {"wynn", "wynn-sablonniere", "levin", "aitken", "tail", None}, default "wynn"
        Accelerator applied to the last ``2 * order + 1`` partial sums (vector Wynn epsilon,
        Wynn epsilon with Sablonniere's modifier for logarithmic convergence, entrywise Levin
        t, entrywise Aitken; ``"tail"`` adds the exact tail of the dominant slow component);
        ``None`` returns the plain partial sum.
    order : int, default 1
        Order ``K`` of the accelerator (``num_terms`` and ``maxiter`` must be ``>= 2K + 1``).
    callback : callable, optional
        Called as ``callback(xk)`` after each term with the current plain partial sum.
    throw : bool, default False
        Raise :class:`hvpseries.ConvergenceError` instead of returning an unconverged result.
    paper : bool, default False
        Reproduce the published update rule exactly: damped series, ``num_terms=20`` (unless
        given), order-1 Wynn on the last 3 partial sums (always returned), and
        ``V = max(V_prev, ||A^2 b|| / ||b||)`` with ``V_prev = scale`` (100 when ``scale`` is
        ``"auto"``, as in the paper; 0 with ``"lower_bound"``). Return ``info["scale"]`` to
        the next call to keep the paper's running max. ``rtol``/``atol`` are not allowed.

    Returns
    -------
    SolveResult
        ``x`` (in the library, device and dtype of ``b``), ``status``, ``n_matvec`` (Lanczos
        included, a block of ``k`` columns counts ``k``), ``n_iter`` (terms summed),
        ``error_estimate`` (float, or a NumPy array per column) and ``info`` with ``scale`` (V),
        ``scale_source``, ``coefficients`` (their kind), ``delta`` (damped), ``variant``,
        ``acceleration``, ``order``, ``returned`` (``"accelerated"`` or ``"plain"``, per column
        for a block), ``plain_error_estimate`` (of the unaccelerated partial sum), ``ratio``
        (observed contraction per term) and ``advice`` (what to do when not converged).

    Raises
    ------
    ValueError
        For ``damping < 0``, an unknown ``variant``/``acceleration``/``scale``, ``num_terms < 1``,
        ``num_terms < 2 * order + 1`` with acceleration, bad tolerances, shape/device mismatches,
        an operator tagged non-symmetric, or options that conflict with ``paper=True``.
    TypeError
        For arguments of the wrong type or mixed array libraries.

    See Also
    --------
    hvpseries.series.coefficients : the coefficients used here.
    hvpseries.acceleration.wynn_epsilon : the default accelerator.

    Notes
    -----
    With ``M = A^2 + s I`` (``s = d`` for ``"quasi-damped"``, else 0), ``Z = I - M / V`` and
    ``v_n = Z^n b = v_{n-1} - (s / V) v_{n-1} - A (A v_{n-1}) / V``,

    .. math:: (A^2 + d I)^{-1/2} b = V^{-1/2} \sum_{n \ge 0} \binom{2n}{n} 4^{-n} v_n, \qquad
              (|A| + d I)^{-1} b = V^{-1/2} \sum_{n \ge 0} c_n(\delta) v_n,

    ``delta = d / sqrt(V)``, with the coefficients of ``1 / (sqrt(1 - x) + delta)`` (computed
    stably, see :func:`coefficients`). The series converges iff every eigenvalue
    ``x_i = 1 - (lambda_i^2 + s) / V`` of ``Z`` lies in ``[-1, 1)`` (``[-1, 1]`` when damped with
    ``d > 0``): ``V >= (lambda_max^2 + s) / 2``. Components decay like ``|x_i|^N``, so with
    ``V ~ lambda_max^2`` about ``kappa(A)^2 log(1 / eps)`` terms are needed; Krylov methods
    need about ``kappa(A) log(1/eps)`` matvecs.

    Stopping and estimates: the plain estimate is the geometric tail
    ``|c_N| V^{-1/2} ||v_N|| r / (1 - r)`` with ``r = ||v_N|| / ||v_{N-1}||``; the accelerated
    estimate is the change of the accelerated value over the last term. The value with the
    smaller estimate is returned (per column). Estimates do not include rounding errors, so
    ``rtol`` should stay well above the dtype's epsilon. ``||v_n||`` cannot increase when the
    series converges, so any growth beyond rounding stops the run with ``Status.DIVERGED``.

    The estimates are estimates, not bounds: the observed ratio ``r`` reflects the components
    that dominate ``v_N`` so far. When ``b`` has a tiny weight on an eigenvector with a much
    smaller ``|lambda|`` than the rest, the run can stop with ``SUCCESS`` before that slow
    component shows (an outside review built a case with the true error 130x the estimate).
    Use a Krylov method (:func:`hvpseries.abs_inv`) when the error must be certain.
    With ``damping > 0`` a zero eigenvalue gives ``x = 1``, where the damped coefficients decay
    like ``n^{-3/2}``: that component converges only like ``N^{-1/2}``, so tolerance runs end
    at ``maxiter`` with a large estimate; ``acceleration="tail"`` or ``"wynn-sablonniere"``
    help, ``variant="quasi-damped"`` or Krylov methods avoid it.

    Differences from the paper (``paper=False``): a tolerance-based stop instead of 20 terms; a
    safe Lanczos scale instead of the running max of a lower bound (which can diverge); the
    accelerated value is returned only when its estimate beats the plain sum's; divergence is
    detected and reported. In both modes the damped coefficients use the stable power-series
    division rather than the paper's forward recurrence (same values in exact arithmetic) and a
    diverging run stops early with ``Status.DIVERGED``.

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
    >>> result.converged, result.info["returned"]
    (True, 'accelerated')
    >>> np.round(result.x, 6)
    array([0.5     , 1.      , 2.      , 1.      , 0.333333])
    >>> damped = series.abs_inv(A, np.ones(5), damping=1.0, rtol=1e-8)
    >>> np.round(damped.x, 6)
    array([0.333333, 0.5     , 0.666667, 0.5     , 0.25    ])
    """
    operator, b = prepare_system(A, b)
    require_not_nonsymmetric(operator, "series.abs_inv")
    d = check_damping(damping)
    if variant not in _VARIANTS:
        message = f"variant must be 'damped' or 'quasi-damped', got {variant!r}"
        raise ValueError(message)
    if paper:
        _check_paper(variant, rtol, atol, acceleration, order)
        if num_terms is None:
            num_terms = PAPER_NUM_TERMS
    check_series_arguments(
        num_terms=num_terms,
        rtol=rtol,
        atol=atol,
        maxiter=maxiter,
        scale=scale,
        acceleration=acceleration,
        order=order,
        callback=callback,
    )
    shift = d if variant == "quasi-damped" else 0.0
    apply = squared_apply(operator)
    if trivial_rhs(
        b, operator.vector_space
    ):  # zero or non-finite b: no scale needed, no matvec spent
        choice = ScaleChoice(1.0, "not needed")
    else:
        choice = choose_scale(
            operator, b, scale, apply=apply, squared=True, shift=shift, paper=paper
        )
    V = choice.value
    if variant == "damped" and d > 0:
        stream = CoefficientStream("damped", delta=d / math.sqrt(V))
    else:
        stream = CoefficientStream("inv_sqrt")
    setup = SeriesSetup(
        apply=apply,
        matvecs_per_apply=2,
        scale=V,
        shift=shift,
        stream=stream,
        prefactor=1.0 / math.sqrt(V),
        n_matvec_before=choice.n_matvec,
        first_product=choice.first_product,
        space=operator.vector_space,
        info={"variant": variant, "damping": d, "scale_source": choice.source, "paper": paper},
    )
    return run_series(
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
        safeguard=not paper,
    )


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
