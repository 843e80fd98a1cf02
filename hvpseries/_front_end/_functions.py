"""The top-level front end: f(A) b for symmetric A with the fastest suitable method.

``abs_inv``, ``inv_sqrt``, ``sqrt``, ``sign``, ``funm`` and ``solve`` validate their input once,
pick a method (``method="auto"``) and dispatch to the solvers of :mod:`hvpseries.krylov`,
:mod:`hvpseries.series` or a dense eigendecomposition. The method used is recorded in
``result.info["method"]``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from .._core._checks import check_choice, check_maxiter, check_nonnegative
from .._core._result import SolveResult, Status
from .._core._scalar_function import checked_scalar_function
from .._dense._eigh import is_small_dense
from .._solve._problem import Problem, finish, pose
from ._dispatch import finished_hooks, run_funm, run_squared, stamped

__all__ = ["abs_inv", "funm", "inv_sqrt", "sign", "solve", "sqrt"]

_FUNM_METHODS = ("auto", "lanczos", "chebyshev", "dense")
_ABS_INV_METHODS = ("auto", "lanczos", "chebyshev", "rational", "series", "dense")
_ROOT_METHODS = ("auto", "lanczos", "chebyshev", "series", "dense")
_SIGN_METHODS = ("auto", "lanczos", "dense")
_SOLVE_METHODS = ("auto", "cg", "minres", "dense")
_VARIANTS = ("damped", "quasi-damped")


@dataclasses.dataclass(frozen=True)
class _Controls:
    """The controls every front-end function takes, as one value."""

    rtol: Any
    atol: Any
    maxiter: Any
    callback: Any
    progress: Any
    throw: bool
    memory: str = "store"
    reorthogonalize: str | None = None

    def lanczos_options(self, method: str) -> dict[str, Any]:
        """Return the Lanczos memory options given (none if defaults), checked against ``method``.

        Raises
        ------
        ValueError
            If options other than the defaults are given with a method other than
            ``"auto"`` or ``"lanczos"`` (with ``"auto"`` they select Lanczos).
        """
        if self.memory == "store" and self.reorthogonalize is None:
            return {}
        if method not in ("auto", "lanczos"):
            message = (
                "memory and reorthogonalize are options of method='lanczos' (or 'auto', which "
                f"they then set to Lanczos), not of method={method!r}"
            )
            raise ValueError(message)
        return {"memory": self.memory, "reorthogonalize": self.reorthogonalize}

    def pose(self, A: Any, b: Any, name: str, method: Any, choices: tuple[str, ...]) -> Problem:
        """Check ``method`` and ``maxiter``, then pose the problem of one front-end call."""
        check_choice(method, "method", choices)
        check_maxiter(self.maxiter)
        return pose(
            A,
            b,
            method=name,
            rtol=self.rtol,
            atol=self.atol,
            callback=self.callback,
            progress=self.progress,
        )


def funm(
    A: Any,
    b: Any,
    f: Callable[[np.ndarray], np.ndarray],
    *,
    method: str = "auto",
    rtol: float = 1e-6,
    atol: float = 0.0,
    maxiter: int | None = None,
    callback: Callable[[Any], Any] | None = None,
    progress: Callable[[int, Any], Any] | None = None,
    throw: bool = False,
    memory: str = "store",
    reorthogonalize: str | None = None,
) -> SolveResult:
    r"""Compute ``f(A) b`` for a symmetric ``A`` and any scalar function ``f``.

    Parameters
    ----------
    A : LinearOperator or matrix
        A symmetric operator (anything :func:`aslinearoperator` accepts). Operators tagged
        ``symmetric=False`` are refused; untagged ones are assumed symmetric.
    b : array, shape (n,) or (n, k)
        Right-hand side (a block is allowed).
    f : callable
        Vectorised scalar function on float64 NumPy arrays (evaluated on the host at
        eigenvalue estimates), defined on the spectrum of ``A``. Its kinks (as 0 for
        ``|t|``) are where Lanczos must rule out hidden eigenvalues: they are located
        numerically, or taken from an attribute ``f.kinks`` (``()`` if ``f`` is analytic);
        see :func:`hvpseries.krylov.funm_lanczos`.
    method : {"auto", "lanczos", "chebyshev", "dense"}, default "auto"
        ``"auto"`` takes ``"dense"`` (full ``eigh``) for an explicit dense matrix with
        ``n <= 1500`` and ``"lanczos"`` otherwise. ``"chebyshev"`` expands ``f`` on an
        interval from :func:`spectral_bounds` (``f`` must be smooth there).
    rtol, atol : float, default 1e-6 and 0
        Requested accuracy: ``||x - f(A) b|| <= max(rtol ||f(A) b||, atol)`` (estimated).
    maxiter : int, optional
        Iteration limit passed to the method. For ``"lanczos"`` a given ``maxiter`` also
        replaces the default deadline after which an iterate that has settled but whose
        bound on hidden eigenvalues is not met ends ``UNVERIFIED``: it goes on until it is
        certified or reaches ``maxiter``.
    callback : callable, optional
        ``callback(xk)`` with the current approximation (shape of ``b``), as in SciPy, for
        every method: after each iteration (``"chebyshev"``, ``"series"``, ``"rational"``,
        ``"cg"``, ``"minres"``), at each checkpoint (``"lanczos"``), once at the end
        (``"dense"``).
    progress : callable, optional
        ``progress(n_matvec, error_estimate)`` for progress bars and logging: at each
        checkpoint of ``"lanczos"`` (free: no iterate is formed), once at the end for the
        other methods.
    throw : bool, default False
        Raise :class:`ConvergenceError` instead of returning a non-converged result.
    memory : {"store", "two-pass"}, default "store"
        Lanczos only (given with ``method="auto"``, it selects Lanczos). ``"store"`` keeps
        the basis, one n-vector per matvec; ``"two-pass"`` keeps ``O(n)`` memory by running
        the recurrence twice, at about twice the matvecs: the choice for a cheap operator
        whose basis would not fit in memory (8 MB per matvec at ``n = 10^6`` in float64).
        A stored basis that reaches half the free memory switches to two passes (not with
        a ``callback``, an explicit ``reorthogonalize`` or a distributed operator). See
        :func:`hvpseries.krylov.funm_lanczos`.
    reorthogonalize : {"partial", "full", "none"}, optional
        Lanczos only: the reorthogonalisation of the stored basis (default ``"full"`` up to
        ``n = 1000``, ``"partial"`` above, ``"none"`` with ``"two-pass"``). ``"none"`` is the
        cheapest per step, at more matvecs where the spectrum makes Lanczos lose
        orthogonality (13x on a log-spaced spectrum).

    Returns
    -------
    SolveResult
        With ``info["method"]`` naming the method used.

    Raises
    ------
    ValueError, TypeError
        For invalid arguments (see :func:`abs_inv`).

    Examples
    --------
    >>> import numpy as np
    >>> import hvpseries as hs
    >>> A = np.diag([1.0, 4.0, 9.0])
    >>> result = hs.funm(A, np.ones(3), np.sqrt)
    >>> result.x, result.info["method"]
    (array([1., 2., 3.]), 'dense')
    """
    controls = _Controls(rtol, atol, maxiter, callback, progress, throw, memory, reorthogonalize)
    problem = controls.pose(A, b, "funm", method, _FUNM_METHODS)
    options = controls.lanczos_options(method)
    result = run_funm(
        problem, checked_scalar_function(f), method, maxiter=maxiter, lanczos_options=options
    )
    return finish(problem, result, throw=controls.throw)


def abs_inv(
    A: Any,
    b: Any,
    *,
    damping: float = 0.0,
    variant: str = "damped",
    method: str = "auto",
    rtol: float = 1e-6,
    atol: float = 0.0,
    maxiter: int | None = None,
    callback: Callable[[Any], Any] | None = None,
    progress: Callable[[int, Any], Any] | None = None,
    throw: bool = False,
    memory: str = "store",
    reorthogonalize: str | None = None,
) -> SolveResult:
    r"""Compute ``(|A| + d I)^-1 b``, the saddle-free Newton direction, for a symmetric ``A``.

    ``|A| = (A^2)^{1/2}`` has the eigenvectors of ``A`` and the absolute values of its
    eigenvalues; ``A`` may be indefinite. Only products with ``A`` are used.

    Parameters
    ----------
    A : LinearOperator or matrix
        A symmetric operator (a Hessian as a :class:`LinearOperator`, a dense or sparse matrix).
    b : array, shape (n,) or (n, k)
        Right-hand side(s), e.g. a gradient.
    damping : float, default 0
        ``d >= 0``. With ``d = 0`` the operator must be nonsingular.
    variant : {"damped", "quasi-damped"}, default "damped"
        ``"damped"``: ``(|A| + d I)^-1 b``; ``"quasi-damped"``: ``(A^2 + d I)^-1/2 b``.
    method : {"auto", "lanczos", "chebyshev", "rational", "series", "dense"}, default "auto"
        ``"auto"``: a dense ``eigh`` for an explicit dense matrix with ``n <= 1500``, else
        Lanczos on ``A`` with ``f(t) = 1/(|t| + d)`` (near the best possible matvec count,
        about ``kappa(A) log(1/eps)``). ``"chebyshev"``: a Chebyshev expansion on an interval
        from :func:`spectral_bounds` (needs ``d > 0`` or a definite ``A``). ``"rational"``:
        quadrature and multi-shift CG on ``A^2``. ``"series"``: the paper's power series
        (:func:`hvpseries.series.abs_inv`), about ``kappa^2 log(1/eps)`` matvecs.
    rtol, atol : float, default 1e-6 and 0
        Requested accuracy ``||x - x_*|| <= max(rtol ||x_*||, atol)`` (estimated).
    maxiter : int, optional
        Iteration limit of the chosen method.
    callback, progress : callable, optional
        ``callback(xk)`` and ``progress(n_matvec, error_estimate)`` as in :func:`funm`.
    throw : bool, default False
        Raise :class:`ConvergenceError` if the method did not converge.
    memory, reorthogonalize : str, optional
        Options of Lanczos, as in :func:`funm`.

    Returns
    -------
    SolveResult
        ``info["method"]`` names the method used.

    Raises
    ------
    ValueError
        For an unknown method or variant, negative damping, bad tolerances, shape
        mismatches, or an operator tagged ``symmetric=False``.
    TypeError
        For mixed array libraries, non-numeric damping or a non-callable callback.

    See Also
    --------
    hvpseries.krylov.funm_lanczos, hvpseries.series.abs_inv

    Examples
    --------
    >>> import numpy as np
    >>> import hvpseries as hs
    >>> A = np.diag([-2.0, 1.0, 4.0])
    >>> result = hs.abs_inv(A, np.ones(3), damping=1.0)
    >>> result.x, result.info["method"]
    (array([0.33333333, 0.5       , 0.2       ]), 'dense')
    >>> hs.abs_inv(A, np.ones(3), method="lanczos", rtol=1e-10).x
    array([0.5 , 1.  , 0.25])
    """
    d = check_nonnegative(damping, "damping")
    if variant not in _VARIANTS:
        message = f"variant must be 'damped' or 'quasi-damped', got {variant!r}"
        raise ValueError(message)
    controls = _Controls(rtol, atol, maxiter, callback, progress, throw, memory, reorthogonalize)
    problem = controls.pose(A, b, "abs_inv", method, _ABS_INV_METHODS)
    extra = {"damping": d, "variant": variant}
    options = controls.lanczos_options(method)
    if method in ("series", "rational"):
        result = run_squared(problem, method, damping=d, variant=variant, maxiter=maxiter)
    else:
        from ..krylov._tridiagonal_functions import AbsInvFunction

        # f(t) = 1/(|t| + d) or (t^2 + d)^(-1/2), callable on NumPy arrays like a function;
        # for Lanczos its tridiagonal_apply makes the checkpoints O(m) instead of O(m^2).
        result = run_funm(
            problem, AbsInvFunction(d, variant), method, maxiter=maxiter, lanczos_options=options
        )
    return finish(problem, stamped(result, result.info.get("method", method), **extra), throw=throw)


def _root(
    A: Any, b: Any, power: float, name: str, damping: Any, method: str, controls: _Controls
) -> SolveResult:
    """Compute ``(A + d I)^power b``: ``inv_sqrt`` (power -1/2) and ``sqrt`` (1/2)."""
    d = check_nonnegative(damping, "damping")
    problem = controls.pose(A, b, name, method, _ROOT_METHODS)
    maxiter = controls.maxiter
    if problem.operator.psd is False:
        message = (
            f"{name} needs a positive (semi-)definite operator, but this one is tagged "
            "psd=False; for an indefinite A use hvpseries.abs_inv or funm"
        )
        raise ValueError(message)
    seen_negative = []

    def f(t: np.ndarray) -> np.ndarray:
        shifted = t + d
        # Eigenvalue estimates of a positive definite operator are positive; a negative one
        # (beyond rounding) means A is indefinite.
        if np.any(shifted < -1e-12 * max(float(np.max(np.abs(t))), 1.0)):
            seen_negative.append(True)
        with np.errstate(divide="ignore"):
            return np.maximum(shifted, 0.0) ** power

    # Its only kink, at -d, lies below the spectrum of a positive semi-definite A (the contract;
    # a Ritz value below it ends as INDEFINITE): nothing for the certificate to bound.
    f.kinks = ()  # type: ignore[attr-defined]

    options = controls.lanczos_options(method)
    if method == "series":
        from ..series import SeriesOptions
        from ..series._inv_sqrt import run_inv_sqrt, run_sqrt

        run = run_inv_sqrt if power < 0 else run_sqrt
        result = run(problem, SeriesOptions(maxiter=maxiter), damping=d)
        finished_hooks(problem, result, iterates=False)
        result = stamped(result, "series")
    else:
        result = run_funm(problem, f, method, maxiter=maxiter, lanczos_options=options)
        if seen_negative and result.status in (Status.SUCCESS, Status.NONFINITE):
            result = dataclasses.replace(result, status=Status.INDEFINITE)
    return finish(problem, stamped(result, result.info["method"], damping=d), throw=controls.throw)


def inv_sqrt(
    A: Any,
    b: Any,
    *,
    damping: float = 0.0,
    method: str = "auto",
    rtol: float = 1e-6,
    atol: float = 0.0,
    maxiter: int | None = None,
    callback: Callable[[Any], Any] | None = None,
    progress: Callable[[int, Any], Any] | None = None,
    throw: bool = False,
    memory: str = "store",
    reorthogonalize: str | None = None,
) -> SolveResult:
    r"""Compute ``(A + d I)^-1/2 b`` for a symmetric positive definite ``A``.

    Parameters
    ----------
    A : LinearOperator or matrix
        Symmetric positive definite (operators tagged ``psd=False`` are refused).
    b : array, shape (n,) or (n, k)
        Right-hand side(s).
    damping : float, default 0
        ``d >= 0`` added to ``A``.
    method : {"auto", "lanczos", "chebyshev", "series", "dense"}, default "auto"
        As in :func:`abs_inv` (``"series"`` is :func:`hvpseries.series.inv_sqrt`).
    rtol, atol, maxiter, callback, progress, throw, memory, reorthogonalize
        As in :func:`abs_inv`.

    Returns
    -------
    SolveResult
        ``status`` is ``INDEFINITE`` if a clearly negative eigenvalue estimate was met.

    Examples
    --------
    >>> import numpy as np
    >>> import hvpseries as hs
    >>> hs.inv_sqrt(np.diag([1.0, 4.0, 16.0]), np.ones(3)).x
    array([1.  , 0.5 , 0.25])
    """
    controls = _Controls(rtol, atol, maxiter, callback, progress, throw, memory, reorthogonalize)
    return _root(A, b, -0.5, "inv_sqrt", damping, method, controls)


def sqrt(
    A: Any,
    b: Any,
    *,
    damping: float = 0.0,
    method: str = "auto",
    rtol: float = 1e-6,
    atol: float = 0.0,
    maxiter: int | None = None,
    callback: Callable[[Any], Any] | None = None,
    progress: Callable[[int, Any], Any] | None = None,
    throw: bool = False,
    memory: str = "store",
    reorthogonalize: str | None = None,
) -> SolveResult:
    r"""Compute ``(A + d I)^1/2 b`` for a symmetric positive semi-definite ``A``.

    Parameters and returns as in :func:`inv_sqrt` (``"series"`` is
    :func:`hvpseries.series.sqrt`).

    Examples
    --------
    >>> import numpy as np
    >>> import hvpseries as hs
    >>> hs.sqrt(np.diag([1.0, 4.0, 16.0]), np.ones(3)).x
    array([1., 2., 4.])
    """
    controls = _Controls(rtol, atol, maxiter, callback, progress, throw, memory, reorthogonalize)
    return _root(A, b, 0.5, "sqrt", damping, method, controls)


def sign(
    A: Any,
    b: Any,
    *,
    method: str = "auto",
    rtol: float = 1e-6,
    atol: float = 0.0,
    maxiter: int | None = None,
    callback: Callable[[Any], Any] | None = None,
    progress: Callable[[int, Any], Any] | None = None,
    throw: bool = False,
    memory: str = "store",
    reorthogonalize: str | None = None,
) -> SolveResult:
    r"""Compute ``sign(A) b = A |A|^-1 b`` for a symmetric ``A``.

    ``sign(A)`` has the eigenvectors of ``A`` and eigenvalues ``+1``/``-1`` (``0`` for a zero
    eigenvalue). It is discontinuous at 0, so Lanczos converges at the rate of
    :func:`abs_inv` with ``d = 0``; ``"chebyshev"`` is not offered.

    Parameters
    ----------
    A, b, rtol, atol, maxiter, callback, progress, throw, memory, reorthogonalize
        As in :func:`abs_inv`.
    method : {"auto", "lanczos", "dense"}, default "auto"
        As in :func:`funm`.

    Returns
    -------
    SolveResult

    Examples
    --------
    >>> import numpy as np
    >>> import hvpseries as hs
    >>> hs.sign(np.diag([-3.0, 0.5, 2.0]), np.ones(3)).x
    array([-1.,  1.,  1.])
    """
    controls = _Controls(rtol, atol, maxiter, callback, progress, throw, memory, reorthogonalize)
    problem = controls.pose(A, b, "sign", method, _SIGN_METHODS)
    from ..krylov._tridiagonal_functions import SignFunction

    options = controls.lanczos_options(method)
    result = run_funm(problem, SignFunction(), method, maxiter=maxiter, lanczos_options=options)
    return finish(problem, result, throw=controls.throw)


def solve(
    A: Any,
    b: Any,
    *,
    method: str = "auto",
    rtol: float = 1e-6,
    atol: float = 0.0,
    maxiter: int | None = None,
    callback: Callable[[Any], Any] | None = None,
    progress: Callable[[int, Any], Any] | None = None,
    throw: bool = False,
) -> SolveResult:
    r"""Solve ``A x = b`` for a symmetric ``A``: CG if ``A`` is tagged ``psd=True``, else MINRES.

    Parameters
    ----------
    A, b, rtol, atol, maxiter, callback, progress, throw
        As in :func:`abs_inv`; the stopping test is SciPy's
        ``||b - A x|| <= max(rtol ||b||, atol)`` on the true residual.
    method : {"auto", "cg", "minres", "dense"}, default "auto"
        ``"auto"``: ``"dense"`` (eigendecomposition) for an explicit dense matrix with
        ``n <= 1500``, else ``"cg"`` for an operator tagged ``psd=True`` and ``"minres"``
        otherwise.

    Returns
    -------
    SolveResult

    Examples
    --------
    >>> import numpy as np
    >>> import hvpseries as hs
    >>> A = hs.aslinearoperator(np.diag([2.0, 4.0]), psd=True)
    >>> result = hs.solve(A, np.ones(2), method="auto")
    >>> result.x, result.info["method"]
    (array([0.5 , 0.25]), 'dense')
    """
    controls = _Controls(rtol, atol, maxiter, callback, progress, throw)
    problem = controls.pose(A, b, "solve", method, _SOLVE_METHODS)
    if method == "auto":
        method = "cg" if problem.operator.psd else "minres"
        if is_small_dense(problem.operator):
            method = "dense"
    if method == "dense":
        result = run_funm(problem, _reciprocal, "dense", maxiter=maxiter)
    else:
        from ..krylov._cg import run_cg
        from ..krylov._minres import run_minres

        run = run_cg if method == "cg" else run_minres
        result = stamped(run(problem, maxiter=maxiter), method)
        finished_hooks(problem, result, iterates=False)
    return finish(problem, result, throw=controls.throw)


def _reciprocal(t: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return 1.0 / t
