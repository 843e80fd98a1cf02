"""The series in ``Z = I - (M + d I) / V`` for a positive (semi-)definite ``M``: shared driver."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._core._result import SolveResult, Status
from .._operators._base import LinearOperator
from .._solve._validation import prepare_system, require_not_nonsymmetric
from ._arguments import check_damping, check_series_arguments
from ._coefficients import CoefficientStream
from ._engine import SeriesSetup, run_series, trivial_rhs
from ._scale import ScaleChoice, choose_scale

__all__ = ["solve_linear_series"]

# kind -> power p of the prefactor V^p: f(M) b = V^p sum_n c_n Z^n b
_PREFACTOR_POWER = {"inv_sqrt": -0.5, "sqrt": 0.5, "neumann": -1.0}


def linear_apply(operator: LinearOperator) -> Callable[[Any], Any]:
    """``v -> M v`` for a vector or a block (one matmat)."""

    def apply(v: Any) -> Any:
        return operator._matmat(v) if v.ndim == 2 else operator._matvec(v)

    return apply


def solve_linear_series(
    name: str,
    kind: str,
    M: Any,
    b: Any,
    *,
    damping: Any,
    num_terms: Any,
    rtol: Any,
    atol: Any,
    maxiter: Any,
    scale: Any,
    acceleration: Any,
    order: Any,
    callback: Any,
    throw: bool,
) -> SolveResult:
    """Validate, choose ``V``, and sum ``V^p sum_n c_n Z^n b`` for a positive definite ``M``."""
    operator, b = prepare_system(M, b)
    require_not_nonsymmetric(operator, name)
    if operator.psd is False:
        message = (
            f"{name} needs a positive (semi-)definite operator, but this one is tagged "
            "psd=False; use hvpseries.series.abs_inv for symmetric indefinite operators"
        )
        raise ValueError(message)
    d = check_damping(damping)
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
    apply = linear_apply(operator)
    if trivial_rhs(
        b, operator.vector_space
    ):  # zero or non-finite b: no scale needed, no matvec spent
        choice = ScaleChoice(1.0, "not needed")
    else:
        choice = choose_scale(operator, b, scale, apply=apply, squared=False, shift=d)
    V = choice.value
    info: dict[str, Any] = {"damping": d, "scale_source": choice.source}
    if choice.negative:
        xp = operator.xp
        info.update(
            scale=V,
            coefficients=kind,
            acceleration=acceleration,
            order=order if acceleration is not None else None,
            returned=None,
            smallest_ritz_value=float(np.min(choice.bounds.ritz_values)),
            advice=(
                f"Lanczos found an eigenvalue below -damping (Ritz value "
                f"{float(np.min(choice.bounds.ritz_values)):.3g}), so M + damping*I is not "
                f"positive definite and {name} cannot converge; use "
                "hvpseries.series.abs_inv or a Krylov method for indefinite operators"
            ),
        )
        result = SolveResult(
            x=xp.full(b.shape, float("nan"), dtype=b.dtype, device=operator.device),
            status=Status.INDEFINITE,
            n_matvec=choice.n_matvec,
            n_iter=0,
            info=info,
        )
        return result.raise_for_status() if throw else result
    setup = SeriesSetup(
        apply=apply,
        matvecs_per_apply=1,
        scale=V,
        shift=d,
        stream=CoefficientStream(kind),
        prefactor=V ** _PREFACTOR_POWER[kind],
        n_matvec_before=choice.n_matvec,
        first_product=choice.first_product,
        space=operator.vector_space,
        spd_method=True,
        info=info,
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
    )
