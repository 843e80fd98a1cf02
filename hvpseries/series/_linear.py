"""The series in ``Z = I - (A + d I) / V`` for a positive (semi-)definite ``A``: shared driver.

:func:`~hvpseries.series.inv_sqrt`, :func:`~hvpseries.series.sqrt` and
:func:`~hvpseries.series.neumann` differ only in the coefficients ``c_n`` and the power ``p``
of the prefactor ``V^p`` (their ``kind``): each resolves its :class:`SeriesOptions` and hands
its call to :func:`solve_linear_series`, which poses the problem, runs
:func:`run_linear_series` on it and finishes the result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._core._result import SolveResult, Status
from .._operators._base import LinearOperator
from .._solve._problem import Problem, finish
from ._coefficients import CoefficientStream
from ._engine import SeriesSetup, pose_series, run
from ._options import SeriesOptions, check_damping
from ._scale import ScaleChoice, choose_scale

__all__ = ["run_linear_series", "solve_linear_series"]

# kind -> power p of the prefactor V^p: f(A) b = V^p sum_n c_n Z^n b
_PREFACTOR_POWER = {"inv_sqrt": -0.5, "sqrt": 0.5, "neumann": -1.0}


def linear_apply(operator: LinearOperator) -> Callable[[Any], Any]:
    """``v -> A v`` for a vector or a block (one matmat)."""

    def apply(v: Any) -> Any:
        return operator.matmat(v) if v.ndim == 2 else operator.matvec(v)

    return apply


def solve_linear_series(
    kind: str,
    A: Any,
    b: Any,
    damping: Any,
    options: SeriesOptions,
    *,
    rtol: float | None,
    atol: float,
    callback: Callable[[Any], Any] | None,
    throw: bool,
) -> SolveResult:
    """Answer the public call ``series.<kind>(A, b, ...)`` whose ``options`` are resolved.

    Checks ``damping`` (before ``A`` and ``b``, so a bad value is the error reported), poses the
    problem, runs :func:`run_linear_series` on it and finishes the result (``throw=True``
    raises :class:`hvpseries.ConvergenceError` for an unconverged one).
    """
    d = check_damping(damping)
    problem = pose_series(A, b, method=f"series.{kind}", rtol=rtol, atol=atol, callback=callback)
    return finish(problem, run_linear_series(problem, options, kind=kind, damping=d), throw=throw)


def run_linear_series(
    problem: Problem, options: SeriesOptions, *, kind: str, damping: float = 0.0
) -> SolveResult:
    """Choose ``V`` and sum ``V^p sum_n c_n Z^n b`` for the posed ``problem`` (raw result).

    ``kind`` is ``"inv_sqrt"``, ``"sqrt"`` or ``"neumann"`` (messages name ``series.<kind>``);
    ``damping`` a validated float (:func:`~hvpseries.series._options.check_damping`). A
    Lanczos scale that reveals an eigenvalue of ``A + d I`` below zero ends the run before the
    series: ``Status.INDEFINITE`` with ``x`` all NaN. The result is the raw one: finish it with
    :func:`hvpseries._solve._problem.finish`.

    Raises
    ------
    ValueError
        If the operator is tagged ``psd=False``.
    """
    name = f"series.{kind}"
    operator = problem.operator
    if operator.psd is False:
        message = (
            f"{name} needs a positive (semi-)definite operator, but this one is tagged "
            "psd=False; use hvpseries.series.abs_inv for symmetric indefinite operators"
        )
        raise ValueError(message)
    apply = linear_apply(operator)
    choice = choose_scale(problem, options.scale, apply=apply, squared=False, shift=damping)
    info: dict[str, Any] = {"damping": damping, "scale_source": choice.source}
    if choice.negative:
        return _indefinite_result(problem, options, choice, info, kind=kind, name=name)
    V = choice.value
    setup = SeriesSetup(
        apply=apply,
        matvecs_per_apply=1,
        scale=V,
        shift=damping,
        stream=CoefficientStream(kind),
        prefactor=V ** _PREFACTOR_POWER[kind],
        n_matvec_before=choice.n_matvec,
        first_product=choice.first_product,
        spd_method=True,
        info=info,
    )
    return run(problem, setup, options)


def _indefinite_result(
    problem: Problem,
    options: SeriesOptions,
    choice: ScaleChoice,
    info: dict[str, Any],
    *,
    kind: str,
    name: str,
) -> SolveResult:
    """Return the result when Lanczos proved ``A + d I`` indefinite: NaN and advice."""
    smallest = float(np.min(choice.bounds.ritz_values))
    info.update(
        scale=choice.value,
        coefficients=kind,
        acceleration=options.acceleration,
        order=options.order if options.acceleration is not None else None,
        returned=None,
        smallest_ritz_value=smallest,
        advice=(
            f"Lanczos found an eigenvalue below -damping (Ritz value {smallest:.3g}), so "
            f"A + damping*I is not positive definite and {name} cannot converge; use "
            "hvpseries.series.abs_inv or a Krylov method for indefinite operators"
        ),
    )
    b = problem.b
    return SolveResult(
        x=problem.xp.full(b.shape, float("nan"), dtype=b.dtype, device=problem.operator.device),
        status=Status.INDEFINITE,
        n_matvec=choice.n_matvec,
        n_iter=0,
        info=info,
    )
