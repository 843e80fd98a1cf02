"""The solve spine: a problem validated once per public call, and the one way results finish.

Every solver's public function is three lines::

    problem = pose(A, b, method="cg", rtol=rtol, atol=atol, x0=x0, callback=callback)
    raw = run_cg(problem, maxiter=maxiter, M=M)  # the method: numerics only, no validation
    return finish(problem, raw, throw=throw)

:func:`pose` checks the tolerances and hooks, converts ``A``, checks ``b`` against it, refuses
an operator tagged non-symmetric, probes an untagged matrix-free one, and rescales a badly
scaled ``b`` (see ``_rhs_scaling``), with one norm of ``b`` (and a finiteness check only when
a norm is not finite) before the first matvec. The norms are kept on the problem, so methods
do not reduce ``b`` again. :func:`finish` unscales the result, adds the relative error
estimate, stamps ``info`` and applies ``throw``. The front end builds one problem and calls a
method's ``run_*`` on it directly.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._core._array_api import host_values, is_array
from .._core._checks import check_hooks, check_tolerances
from .._core._result import SolveResult, Status
from .._core._vector_space import VectorSpace
from .._operators._base import LinearOperator
from ._rhs_scaling import (
    as_factor,
    balancing_scales,
    log2_norms,
    unscale_per_column,
    unscaled,
    with_relative_estimate,
)
from ._symmetry_probe import probe_symmetry
from ._validation import prepare_system, require_not_nonsymmetric

__all__ = ["Problem", "finish", "pose"]


@dataclass(frozen=True)
class Problem:
    """A validated problem ``f(A) b`` or ``A x = b``, as the methods receive it.

    ``b``, ``x0`` and ``atol`` are those of the solve the method runs: multiplied by the
    per-column powers of two ``scales`` when ``b`` was badly scaled (``scales`` is None
    otherwise), and ``callback``/``progress`` then see unscaled values. ``b_norms`` are the
    column norms of that ``b`` on the host (``||b||`` is ``b_norms[0]`` for a vector), and
    ``finite`` says whether every entry of ``b`` is finite.
    """

    operator: LinearOperator
    b: Any
    rtol: Any
    atol: float
    x0: Any
    callback: Callable[[Any], Any] | None
    progress: Callable[[int, Any], Any] | None
    method: str
    b_norms: np.ndarray
    finite: bool
    scales: np.ndarray | None
    probed_matvecs: int

    @property
    def xp(self) -> Any:
        """The operator's array namespace."""
        return self.operator.xp

    @property
    def space(self) -> VectorSpace:
        """The operator's vector space (inner products and norms of the solve)."""
        return self.operator.vector_space

    @property
    def vector(self) -> bool:
        """Whether ``b`` is a vector ``(n,)`` rather than a block ``(n, k)``."""
        return self.b.ndim == 1

    @property
    def block(self) -> Any:
        """``b`` as an ``(n, k)`` block (a view; ``k = 1`` for a vector)."""
        return self.xp.reshape(self.b, (self.b.shape[0], 1)) if self.vector else self.b


def pose(
    A: Any,
    b: Any,
    *,
    method: str,
    rtol: Any,
    atol: Any,
    x0: Any = None,
    callback: Any = None,
    progress: Any = None,
    rtol_may_be_none: bool = False,
    rescale: bool = True,
) -> Problem:
    """Validate one public call and return its :class:`Problem`.

    Parameters
    ----------
    A, b
        The operator (anything :func:`hvpseries.aslinearoperator` accepts) and the
        right-hand side ``(n,)`` or ``(n, k)``.
    method : str
        The public name, used in error messages.
    rtol, atol
        The tolerances (``rtol=None`` allowed with ``rtol_may_be_none``, for fixed budgets).
    x0, callback, progress
        The starting guess and hooks, where the method has them.
    rescale : bool, default True
        Rescale a badly scaled ``b``; False for a method that solves a block column by
        column through its public function, so that each column is posed (and scaled) alone.

    Raises
    ------
    TypeError, ValueError
        For bad tolerances or hooks, a ``b`` that does not fit ``A``, or an operator tagged
        or probed non-symmetric.
    """
    check_tolerances(rtol, atol, rtol_may_be_none=rtol_may_be_none)
    check_hooks(callback=callback, progress=progress)
    operator, b = prepare_system(A, b)
    require_not_nonsymmetric(operator, method)
    probed = probe_symmetry(operator, method)
    space = operator.vector_space
    with np.errstate(over="ignore", invalid="ignore"):  # judged below
        norms = np.reshape(host_values(space.norm(b)), (-1,))
    exponents = log2_norms(space, b, norms)
    # a finite norm proves every entry finite: the entry-wise test only where one is not
    finite = bool(np.all(np.isfinite(norms))) or space.all_finite(b)
    scales = None
    if rescale and finite:
        scales = balancing_scales(space, b, operator.xp.finfo(b.dtype), exponents)
        if scales is not None and x0 is not None and not _fits(space, x0, b, scales):
            scales = None  # x0 does not fit the scaled problem: solve as given
    if scales is not None:
        b = b * as_factor(operator.xp, b, scales)
        x0 = None if x0 is None else x0 * as_factor(operator.xp, b, scales)
        atol = float(atol) * float(np.min(scales))  # one atol for all columns: the safest
        with np.errstate(over="ignore", invalid="ignore"):
            norms = np.reshape(host_values(space.norm(b)), (-1,))
        callback, progress = _unscaling_hooks(operator.xp, b, scales, callback, progress)
    return Problem(
        operator=operator,
        b=b,
        rtol=rtol,
        atol=float(atol),
        x0=x0,
        callback=callback,
        progress=progress,
        method=method,
        b_norms=norms,
        finite=finite,
        scales=scales,
        probed_matvecs=probed,
    )


def finish(problem: Problem, result: SolveResult, *, throw: bool = False) -> SolveResult:
    """Return the caller's result from a method's raw result on ``problem``.

    Adds the symmetry probe's matvecs and ``relative_error_estimate``, undoes the right-hand
    side's scaling (a solution that then overflows is ``NONFINITE``), and raises
    :class:`hvpseries.ConvergenceError` for a non-converged result when ``throw``.
    """
    if problem.probed_matvecs:
        result = dataclasses.replace(result, n_matvec=result.n_matvec + problem.probed_matvecs)
    if is_array(result.x):
        space = problem.space
        result = with_relative_estimate(result, space)
        if problem.scales is not None:
            result = unscaled(problem.xp, problem.b, result, problem.scales, space)
    return result.raise_for_status() if throw else result


def nonfinite_result(problem: Problem, info: dict[str, Any]) -> SolveResult:
    """Return the result for a ``b`` with a NaN or infinite entry: zeros, ``NONFINITE``."""
    return SolveResult(
        x=problem.xp.zeros_like(problem.b),
        status=Status.NONFINITE,
        n_matvec=0,
        n_iter=0,
        info=info,
    )


def _fits(space: VectorSpace, x0: Any, b: Any, scales: np.ndarray) -> bool:
    """Whether ``x0`` stays in range when scaled like ``b``."""
    if not is_array(x0) or x0.shape != b.shape:
        return False  # the method refuses it with its own message
    with np.errstate(over="ignore"):
        moved = log2_norms(space, x0 * as_factor(space.xp, b, scales))
    return not np.any(moved > math.log2(float(space.xp.finfo(b.dtype).max)) / 2 - 1)


def _unscaling_hooks(
    xp: Any,
    b: Any,
    scales: np.ndarray,
    callback: Callable[[Any], Any] | None,
    progress: Callable[[int, Any], Any] | None,
) -> tuple[Callable[[Any], Any] | None, Callable[[int, Any], Any] | None]:
    """Hooks of the scaled solve that show the caller unscaled iterates and estimates."""
    inverse = 1.0 / scales
    if callback is not None:
        unscale = as_factor(xp, b, inverse)
        user_callback = callback

        def callback(x: Any) -> Any:
            return user_callback(x * unscale)

    if progress is not None:
        user_progress = progress

        def progress(count: int, value: Any) -> Any:
            return user_progress(count, unscale_per_column(value, inverse))

    return callback, progress
