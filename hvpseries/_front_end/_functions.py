"""The top-level front end: f(A) b for symmetric A with the fastest suitable method.

``abs_inv``, ``inv_sqrt``, ``sqrt``, ``sign``, ``funm`` and ``solve`` validate their input once,
pick a method (``method="auto"``) and dispatch to the solvers of :mod:`hvpseries.krylov`,
:mod:`hvpseries.series` or a dense eigendecomposition. The method used is recorded in
``result.info["method"]``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .._core._array_api import epsilon, host_values, is_complex_dtype
from .._core._checks import check_hooks, check_maxiter, check_nonnegative, check_tolerances
from .._core._result import SolveResult, Status
from .._core._scalar_function import checked_scalar_function
from .._operators._base import LinearOperator
from .._operators._explicit import MatrixOperator
from .._solve._rhs_scaling import scales_right_hand_side
from .._solve._validation import prepare_system, require_not_nonsymmetric

__all__ = ["abs_inv", "funm", "inv_sqrt", "sign", "solve", "sqrt"]

# Below this size an explicit dense matrix is diagonalised outright: one O(n^3) eigh beats
# every iterative method there (0.19 s at n = 1000 versus ~0.5 s for Lanczos on a hard
# spectrum, see docs/krylov.rst).
DENSE_LIMIT = 1500

_FUNM_METHODS = ("auto", "lanczos", "chebyshev", "dense")
_ABS_INV_METHODS = ("auto", "lanczos", "chebyshev", "rational", "series", "dense")
_ROOT_METHODS = ("auto", "lanczos", "chebyshev", "series", "dense")
_SOLVE_METHODS = ("auto", "cg", "minres", "dense")
_VARIANTS = ("damped", "quasi-damped")


def _check_method(method: Any, choices: tuple[str, ...]) -> None:
    if method not in choices:
        message = f"method must be one of {', '.join(map(repr, choices))}, got {method!r}"
        raise ValueError(message)


@dataclasses.dataclass(frozen=True)
class _Hooks:
    """The caller's ``callback(xk)`` and ``progress(n_matvec, error_estimate)``."""

    callback: Callable[[Any], Any] | None
    progress: Callable[[int, Any], Any] | None

    def finished(self, result: SolveResult, *, iterates: bool) -> None:
        """Call the hooks once at the end of a method that does not report progress.

        ``iterates``: the method does not call ``callback(xk)`` either.
        """
        if iterates and self.callback is not None:
            self.callback(result.x)
        if self.progress is not None:
            self.progress(result.n_matvec, result.error_estimate)


def _common_checks(
    A: Any, b: Any, rtol: Any, atol: Any, maxiter: Any, hooks: _Hooks, name: str
) -> tuple[LinearOperator, Any]:
    operator, b = prepare_system(A, b)
    require_not_nonsymmetric(operator, name)
    check_tolerances(rtol, atol)
    check_maxiter(maxiter)
    check_hooks(callback=hooks.callback, progress=hooks.progress)
    return operator, b


def _is_small_explicit(operator: LinearOperator) -> bool:
    """Whether a dense eigendecomposition is the fastest route (explicit dense, small n)."""
    return (
        isinstance(operator, MatrixOperator)
        and getattr(operator, "_kind", None) == "dense"
        and operator.shape[0] <= DENSE_LIMIT
    )


def _with_method(result: SolveResult, method: str, throw: bool, **extra: Any) -> SolveResult:
    info = {**dict(result.info), "method": method, **extra}
    result = dataclasses.replace(result, info=info)
    return result.raise_for_status() if throw else result


@scales_right_hand_side()
def _dense_funm(
    operator: LinearOperator,
    b: Any,
    f: Callable[[np.ndarray], np.ndarray],
    *,
    rtol: float,
    atol: float,
) -> SolveResult:
    """``f(A) b`` from a full eigendecomposition ``A = V diag(l) V^T`` (``xp.linalg.eigh``).

    The error estimate is the first-order effect of the backward error ``E`` of ``eigh``
    (``||E|| <= eps ||A||``) on ``f(A) b = V f(l) c``, ``c = V^H b``, with ``E``'s entries in
    the eigenbasis of the size of a random matrix of norm ``2 eps max |l|``, i.e.
    ``e = 2 eps max |l| / sqrt(n)`` (about eight times those measured for LAPACK). An
    eigenvalue's own share moves it by ``e``; the eigenvectors' share mixes pairs ``i, j`` by
    ``e`` times ``f``'s divided difference ``(f_i - f_j) / (l_i - l_j)`` (capped at
    ``|f_i - f_j|``, a full rotation); plus ``2 eps max |f| ||b||`` for forming ``c`` and
    ``x``. Near a
    singularity of ``f`` (a zero eigenvalue of ``|A|^-1``, of ``sign``) it is large and the
    status is STAGNATED.
    """
    xp = operator.xp
    explicit = isinstance(operator, MatrixOperator)
    matrix = operator.todense()
    # The Hermitian part (the operator was checked to be Hermitian up to rounding)
    is_complex = is_complex_dtype(xp, operator.dtype)
    adjoint = xp.conj(xp.matrix_transpose(matrix)) if is_complex else xp.matrix_transpose(matrix)
    matrix = (matrix + adjoint) / 2
    eigenvalues, vectors = xp.linalg.eigh(matrix)
    # f is a NumPy function: evaluate it on the host, move the n values back once.
    host = host_values(eigenvalues)
    values = np.asarray(f(host), dtype=np.float64)
    scale = xp.asarray(values, dtype=operator.dtype, device=operator.device)
    # V^H b: the conjugate for a complex Hermitian matrix
    projected = xp.matmul(
        xp.conj(xp.matrix_transpose(vectors)) if is_complex else xp.matrix_transpose(vectors), b
    )
    x = xp.matmul(vectors, projected * (scale[:, None] if b.ndim == 2 else scale))
    finite = bool(np.all(np.isfinite(values))) and operator.vector_space.all_finite(x)
    space = operator.vector_space
    b_norms = host_values(xp.reshape(space.norm(b), (-1,)))
    x_norms = host_values(xp.reshape(space.norm(x), (-1,)))
    eps = epsilon(xp, operator.dtype)
    c = host_values(xp.reshape(xp.abs(projected), (-1,))).reshape(host.size, -1)
    rounding = 2 * eps * float(np.max(np.abs(values), initial=0.0)) * b_norms
    estimate = _eigh_error_estimate(f, host, values, c, eps) + rounding
    if not finite:
        status = Status.NONFINITE
    elif np.all(estimate <= np.maximum(rtol * x_norms, atol)):
        status = Status.SUCCESS
    else:
        status = Status.STAGNATED
    return SolveResult(
        x=x,
        status=status,
        n_matvec=0 if explicit else operator.shape[0],
        n_iter=1,
        error_estimate=float(estimate[0]) if b.ndim == 1 else estimate,
        info={},
    )


def _eigh_error_estimate(
    f: Callable[[np.ndarray], np.ndarray],
    eigenvalues: np.ndarray,
    values: np.ndarray,
    c: np.ndarray,
    eps: float,
) -> np.ndarray:
    """Return the first-order error of ``V f(l) c`` from the backward error of ``eigh``."""
    if not np.all(np.isfinite(values)):
        return np.full(c.shape[1], np.inf)
    n = eigenvalues.size
    # E's entries in the eigenbasis, diagonal (the eigenvalues' errors) and off-diagonal alike
    shift = 2 * eps * float(np.max(np.abs(eigenvalues), initial=0.0)) / math.sqrt(max(n, 1))
    with np.errstate(all="ignore"):
        moved = np.maximum(
            *(
                np.abs(np.asarray(f(eigenvalues + step), dtype=np.float64) - values)
                for step in (shift, -shift)
            )
        )
        moved = np.where(np.isnan(moved), np.inf, moved)  # f singular within the rounding
        jumps = np.abs(values[:, None] - values[None, :])
        gaps = np.abs(eigenvalues[:, None] - eigenvalues[None, :])
        mixing = np.where(gaps > 0, np.minimum(jumps, shift * jumps / gaps), 0.0)
    own = (moved[:, None] * c) ** 2
    pairs = (mixing**2) @ (c**2)
    return np.sqrt(np.sum(own + pairs, axis=0))


def _nonfinite_input(operator: LinearOperator, b: Any, method: str, throw: bool) -> SolveResult:
    result = SolveResult(x=operator.xp.zeros_like(b), status=Status.NONFINITE, n_matvec=0, n_iter=0)
    return _with_method(result, method, throw)


def _dispatch_funm(
    operator: LinearOperator,
    b: Any,
    f: Callable[[np.ndarray], np.ndarray],
    method: str,
    *,
    rtol: float,
    atol: float,
    maxiter: int | None,
    hooks: _Hooks,
    throw: bool,
    chebyshev_interval: Callable[[], tuple[float, float]] | None = None,
) -> SolveResult:
    if method == "auto":
        method = "dense" if _is_small_explicit(operator) else "lanczos"
    if not operator.vector_space.all_finite(b):
        return _nonfinite_input(operator, b, method, throw)
    if method == "dense":
        result = _dense_funm(operator, b, f, rtol=rtol, atol=atol)
        hooks.finished(result, iterates=True)
        return _with_method(result, "dense", throw)
    if method == "lanczos":
        from ..krylov import funm_lanczos

        result = funm_lanczos(
            operator,
            b,
            f,
            rtol=rtol,
            atol=atol,
            maxiter=maxiter,
            callback=hooks.callback,
            progress=hooks.progress,
        )
        return _with_method(result, "lanczos", throw)
    from ..krylov import _spectrum as _spectral
    from ..krylov import funm_chebyshev

    if chebyshev_interval is None:
        bounds = _spectral.spectral_bounds(operator)
        lower = max(bounds.lower, 0.0) if operator.psd else bounds.lower
        interval, extra_matvecs = (lower, bounds.upper), bounds.n_matvec
    else:
        interval, extra_matvecs = chebyshev_interval(), 0
    with np.errstate(all="ignore"):
        ends = np.asarray(f(np.asarray(interval, dtype=np.float64)), dtype=np.float64)
    if not np.all(np.isfinite(ends)):
        message = (
            f"method='chebyshev' needs the function finite on the whole spectral interval "
            f"[{interval[0]:.3g}, {interval[1]:.3g}], but it is singular there (the enclosure of "
            "the spectrum reaches 0); use method='lanczos' (or 'auto'), or damping > 0"
        )
        raise ValueError(message)
    result = funm_chebyshev(
        operator,
        b,
        f,
        interval=interval,
        rtol=rtol,
        atol=atol,
        maxiter=maxiter,
        callback=hooks.callback,
    )
    result = dataclasses.replace(result, n_matvec=result.n_matvec + extra_matvecs)
    hooks.finished(result, iterates=False)
    return _with_method(result, "chebyshev", throw)


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
        eigenvalue estimates), defined on the spectrum of ``A``.
    method : {"auto", "lanczos", "chebyshev", "dense"}, default "auto"
        ``"auto"`` takes ``"dense"`` (full ``eigh``) for an explicit dense matrix with
        ``n <= 1500`` and ``"lanczos"`` otherwise. ``"chebyshev"`` expands ``f`` on an
        interval from :func:`spectral_bounds` (``f`` must be smooth there).
    rtol, atol : float, default 1e-6 and 0
        Requested accuracy: ``||x - f(A) b|| <= max(rtol ||f(A) b||, atol)`` (estimated).
    maxiter : int, optional
        Iteration limit passed to the method.
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
    hooks = _Hooks(callback, progress)
    operator, b = _common_checks(A, b, rtol, atol, maxiter, hooks, "funm")
    _check_method(method, _FUNM_METHODS)
    return _dispatch_funm(
        operator,
        b,
        checked_scalar_function(f),
        method,
        rtol=rtol,
        atol=atol,
        maxiter=maxiter,
        hooks=hooks,
        throw=throw,
    )


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
    hooks = _Hooks(callback, progress)
    operator, b = _common_checks(A, b, rtol, atol, maxiter, hooks, "abs_inv")
    _check_method(method, _ABS_INV_METHODS)
    d = check_nonnegative(damping, "damping")
    if variant not in _VARIANTS:
        message = f"variant must be 'damped' or 'quasi-damped', got {variant!r}"
        raise ValueError(message)
    from ..krylov._tridiagonal_functions import AbsInvFunction

    # f(t) = 1/(|t| + d) or (t^2 + d)^(-1/2), callable on NumPy arrays like a plain function;
    # with method="lanczos" its tridiagonal_apply makes the checkpoints O(m) instead of O(m^2).
    f = AbsInvFunction(d, variant)

    extra = {"damping": d, "variant": variant}
    if method == "series":
        from ..series import abs_inv as series_abs_inv

        result = series_abs_inv(
            operator,
            b,
            damping=d,
            variant=variant,
            rtol=rtol,
            atol=atol,
            maxiter=maxiter,
            callback=callback,
        )
        hooks.finished(result, iterates=False)
        return _with_method(result, "series", throw, **extra)
    if method == "rational":
        from ..krylov import abs_inv_rational

        result = abs_inv_rational(
            operator,
            b,
            damping=d,
            variant=variant,
            rtol=rtol,
            atol=atol,
            maxiter=maxiter,
            callback=callback,
        )
        hooks.finished(result, iterates=False)
        return _with_method(result, "rational", throw, **extra)
    result = _dispatch_funm(
        operator,
        b,
        f,
        method,
        rtol=rtol,
        atol=atol,
        maxiter=maxiter,
        hooks=hooks,
        throw=False,
    )
    return _with_method(result, result.info["method"], throw, **extra)


def _root(
    A: Any,
    b: Any,
    power: float,
    name: str,
    *,
    damping: Any,
    method: str,
    rtol: float,
    atol: float,
    maxiter: int | None,
    hooks: _Hooks,
    throw: bool,
) -> SolveResult:
    operator, b = _common_checks(A, b, rtol, atol, maxiter, hooks, name)
    _check_method(method, _ROOT_METHODS)
    d = check_nonnegative(damping, "damping")
    if operator.psd is False:
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

    if method == "series":
        from .. import series

        solver = series.inv_sqrt if power < 0 else series.sqrt
        result = solver(
            operator, b, damping=d, rtol=rtol, atol=atol, maxiter=maxiter, callback=hooks.callback
        )
        hooks.finished(result, iterates=False)
        return _with_method(result, "series", throw, damping=d)
    result = _dispatch_funm(
        operator,
        b,
        f,
        method,
        rtol=rtol,
        atol=atol,
        maxiter=maxiter,
        hooks=hooks,
        throw=False,
    )
    if seen_negative and result.status in (Status.SUCCESS, Status.NONFINITE):
        result = dataclasses.replace(result, status=Status.INDEFINITE)
    return _with_method(result, result.info["method"], throw, damping=d)


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
    rtol, atol, maxiter, callback, progress, throw
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
    return _root(
        A,
        b,
        -0.5,
        "inv_sqrt",
        damping=damping,
        method=method,
        rtol=rtol,
        atol=atol,
        maxiter=maxiter,
        hooks=_Hooks(callback, progress),
        throw=throw,
    )


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
    return _root(
        A,
        b,
        0.5,
        "sqrt",
        damping=damping,
        method=method,
        rtol=rtol,
        atol=atol,
        maxiter=maxiter,
        hooks=_Hooks(callback, progress),
        throw=throw,
    )


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
) -> SolveResult:
    r"""Compute ``sign(A) b = A |A|^-1 b`` for a symmetric ``A``.

    ``sign(A)`` has the eigenvectors of ``A`` and eigenvalues ``+1``/``-1`` (``0`` for a zero
    eigenvalue). It is discontinuous at 0, so Lanczos converges at the rate of
    :func:`abs_inv` with ``d = 0``; ``"chebyshev"`` is not offered.

    Parameters
    ----------
    A, b, rtol, atol, maxiter, callback, progress, throw
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
    hooks = _Hooks(callback, progress)
    operator, b = _common_checks(A, b, rtol, atol, maxiter, hooks, "sign")
    _check_method(method, ("auto", "lanczos", "dense"))
    from ..krylov._tridiagonal_functions import SignFunction

    return _dispatch_funm(
        operator,
        b,
        SignFunction(),
        method,
        rtol=rtol,
        atol=atol,
        maxiter=maxiter,
        hooks=hooks,
        throw=throw,
    )


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
    hooks = _Hooks(callback, progress)
    operator, b = _common_checks(A, b, rtol, atol, maxiter, hooks, "solve")
    _check_method(method, _SOLVE_METHODS)
    if method == "auto":
        method = "cg" if operator.psd else "minres"
        if _is_small_explicit(operator):
            method = "dense"
    if method == "dense":
        if not operator.vector_space.all_finite(b):
            return _nonfinite_input(operator, b, "dense", throw)

        def reciprocal(t: np.ndarray) -> np.ndarray:
            with np.errstate(divide="ignore"):
                return 1.0 / t

        result = _dense_funm(operator, b, reciprocal, rtol=rtol, atol=atol)
        hooks.finished(result, iterates=True)
        return _with_method(result, "dense", throw)
    from ..krylov import cg, minres

    solver = cg if method == "cg" else minres
    result = solver(operator, b, rtol=rtol, atol=atol, maxiter=maxiter, callback=callback)
    hooks.finished(result, iterates=False)
    return _with_method(result, method, throw)
