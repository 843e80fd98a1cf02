"""What every hvpseries solver returns: a frozen result with an actionable status."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["ConvergenceError", "SolveResult", "Status"]


class Status(enum.Enum):
    """Outcome of a solver run; each value is a message that says what to do next.

    Examples
    --------
    >>> from hvpseries import Status
    >>> Status.SUCCESS.converged
    True
    >>> Status.MAX_ITERATIONS.converged
    False
    >>> Status.COMPLETED.converged, Status.COMPLETED.usable
    (False, True)
    >>> print(Status.MAX_ITERATIONS.value)  # doctest: +ELLIPSIS
    The maximum number of iterations was reached before the tolerance was met; ...
    """

    SUCCESS = "The stopping test was met."
    COMPLETED = (
        "The requested fixed budget (num_terms or num_matvecs) was used and no tolerance was "
        "requested; check error_estimate, or pass rtol to stop on an error estimate."
    )
    MAX_ITERATIONS = (
        "The maximum number of iterations was reached before the tolerance was met; increase "
        "maxiter, loosen rtol/atol, or use a faster method (hvpseries.abs_inv picks one)."
    )
    DIVERGED = (
        "The iteration diverged: its iterates grew instead of converging. For the series the "
        "scale is below the spectrum (use scale='auto' or a larger float scale) or a zero "
        "eigenvalue meets damping=0 (use damping > 0); for Chebyshev the interval does not "
        "enclose the spectrum (widen it, e.g. with hvpseries.spectral_bounds)."
    )
    NONFINITE = (
        "A NaN or infinite value appeared in the input or during the iteration; check the "
        "operator and right-hand side for non-finite values and overflow."
    )
    INDEFINITE = (
        "The operator is not positive definite (a direction of non-positive curvature was "
        "found); use a method for indefinite operators such as minres or hvpseries.abs_inv."
    )
    BREAKDOWN = (
        "The method broke down (a division by a zero inner product); try another method, "
        "another starting vector, or check that the operator is symmetric."
    )
    UNVERIFIED = (
        "The error estimate met the tolerance, but the error from eigenvalues the Krylov space "
        "has not resolved yet, beyond a point where f is not smooth (0 for |t| and sign), could "
        "not be bounded below it within the step budget. If A is positive semi-definite, tag it "
        "(with_structure(psd=True)); else add damping, give a larger maxiter (the steps then go on "
        "to it), or use method='dense'."
    )
    STAGNATED = (
        "The iteration stagnated above the tolerance, most likely at the limit of the "
        "floating-point precision; loosen rtol/atol or work in higher precision."
    )

    @property
    def converged(self) -> bool:
        """Whether a requested tolerance was met (only ``SUCCESS``)."""
        return self is Status.SUCCESS

    @property
    def usable(self) -> bool:
        """Whether the run did what was asked: met its tolerance or used its fixed budget.

        ``COMPLETED`` (a fixed ``num_terms`` or ``num_matvecs`` used up, no tolerance asked
        for) is usable but not converged: nothing was verified, so ``throw=True`` does not
        raise on it, but ``converged`` is False.
        """
        return self in (Status.SUCCESS, Status.COMPLETED)


class ConvergenceError(RuntimeError):
    """Raised by solvers called with ``throw=True`` when they did not converge.

    The full :class:`SolveResult` is available as the ``result`` attribute.

    Examples
    --------
    >>> import numpy as np
    >>> from hvpseries import ConvergenceError, SolveResult, Status
    >>> result = SolveResult(x=np.zeros(2), status=Status.MAX_ITERATIONS, n_matvec=9, n_iter=9)
    >>> error = ConvergenceError(result)
    >>> error.result.n_matvec
    9
    >>> str(error).split(":")[0]
    'MAX_ITERATIONS'
    """

    def __init__(self, result: SolveResult) -> None:
        super().__init__(f"{result.status.name}: {result.status.value}")
        self.result = result

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.result,))


@dataclass(frozen=True, repr=False, eq=False)
class SolveResult:
    """Frozen outcome of a solver run.

    Attributes
    ----------
    x : array
        The computed solution, in the namespace, device and dtype of the right-hand side.
    status : Status
        What happened; ``status.value`` is a message saying what to do next.
    n_matvec : int
        Number of operator applications used, counting every column of a block as one matvec
        (matvecs spent on scale or spectrum estimation included).
    n_iter : int
        Number of iterations (terms of a series, Krylov steps).
    error_estimate : float or array or None
        The method's estimate of the error in ``x`` (per column for a block right-hand side), or
        ``None`` when the method has none.
    residual_norm : float or array or None
        The residual norm ``||b - A x||`` when the method computes it, else ``None``.
    info : Mapping
        Method-specific extras (for example the scale factor or the method picked).
    relative_error_estimate : float or array or None
        ``error_estimate / ||x||`` (per column), the number to compare with ``rtol``;
        ``None`` when the method has no error estimate.

    Examples
    --------
    >>> import numpy as np
    >>> from hvpseries import SolveResult, Status
    >>> result = SolveResult(x=np.zeros(3), status=Status.SUCCESS, n_matvec=4, n_iter=2)
    >>> result.converged
    True
    >>> result
    SolveResult(status=SUCCESS, converged=True, n_matvec=4, n_iter=2, error_estimate=None, \
relative_error_estimate=None, residual_norm=None, info={})
    """

    x: Any
    status: Status
    n_matvec: int
    n_iter: int
    error_estimate: Any = None
    residual_norm: Any = None
    info: Mapping[str, Any] = field(default_factory=dict)
    relative_error_estimate: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.status, Status):
            message = f"status must be a hvpseries.Status, got {self.status!r}"
            raise TypeError(message)
        object.__setattr__(self, "info", MappingProxyType(dict(self.info)))

    def __reduce__(self) -> tuple[Any, ...]:
        # the read-only info view cannot be pickled; rebuild it from a plain dict
        fields = (self.x, self.status, self.n_matvec, self.n_iter, self.error_estimate)
        extras = (self.residual_norm, dict(self.info), self.relative_error_estimate)
        return (type(self), (*fields, *extras))

    @property
    def converged(self) -> bool:
        """Whether the requested tolerance was met (``status.converged``)."""
        return self.status.converged

    @property
    def usable(self) -> bool:
        """Whether the run met its tolerance or used its fixed budget (``status.usable``)."""
        return self.status.usable

    @property
    def message(self) -> str:
        """The status message: what happened and what to do about it."""
        return self.status.value

    def raise_for_status(self) -> SolveResult:
        """Return ``self`` if usable, else raise :class:`ConvergenceError`.

        ``SUCCESS`` and ``COMPLETED`` (a fixed budget that was asked for) pass; every other
        status raises.

        Examples
        --------
        >>> import numpy as np
        >>> from hvpseries import ConvergenceError, SolveResult, Status
        >>> bad = SolveResult(x=np.zeros(2), status=Status.DIVERGED, n_matvec=2, n_iter=1)
        >>> try:
        ...     bad.raise_for_status()
        ... except ConvergenceError as error:
        ...     print(error.result.status.name)
        DIVERGED
        """
        if not self.usable:
            raise ConvergenceError(self)
        return self

    def __repr__(self) -> str:
        return (
            f"SolveResult(status={self.status.name}, converged={self.converged}, "
            f"n_matvec={self.n_matvec}, n_iter={self.n_iter}, "
            f"error_estimate={self.error_estimate!r}, "
            f"relative_error_estimate={self.relative_error_estimate!r}, "
            f"residual_norm={self.residual_norm!r}, info={dict(self.info)!r})"
        )
