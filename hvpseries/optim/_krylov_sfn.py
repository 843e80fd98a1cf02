"""KrylovSFN: the saddle-free Newton step with the near-optimal Krylov front end."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from .._core._checks import check_choice, check_maxiter, check_tolerances
from .._front_end._functions import _ABS_INV_METHODS, abs_inv
from .._operators._base import LinearOperator
from ._base import SaddleFreeNewton

__all__ = ["KrylovSFN"]


class KrylovSFN(SaddleFreeNewton):
    """Saddle-free Newton with ``u ~ (|H| + d I)^-1 g`` from :func:`hvpseries.abs_inv`.

    The same step as :class:`SeriesSFN` (adaptive learning rate and momentum,
    Levenberg-Marquardt damping), with the direction computed to a tolerance by a Krylov
    method: about ``kappa`` HVPs instead of the series' ``kappa^2`` for the same accuracy.

    Parameters
    ----------
    params : iterable of tensors or one parameter group
        As for :class:`SeriesSFN`.
    damping : float, default 1.0
        Initial damping ``d >= 0``.
    rtol : float, default 1e-3
        Relative accuracy of the direction.
    maxiter : int or None, default 40
        Most Lanczos steps (about one HVP each) per direction: a per-step budget like
        :class:`SeriesSFN`'s 38 HVPs. A direction that reaches it is used as it is (counted in
        ``counters["inexact"]``); ``None`` runs the solver to ``rtol``, which on
        ill-conditioned Hessians can take hundreds of HVPs per step.
    method : str, default "lanczos"
        The method of :func:`hvpseries.abs_inv` (``"lanczos"``, ``"auto"``, ``"series"``, ...).
    adaptive, lr, momentum, damping_factor, damping_min, damping_max
        As for :class:`SeriesSFN`.
    reject_increase : bool, default True
        Undo a step whose loss increased (and raise the damping). Unlike :class:`SeriesSFN`
        (the paper's method, which never rejects), the default is on: an accurate
        ``(|H| + dI)^-1 g`` on a small batch amplifies the directions the batch's Hessian barely
        sees, and without rejection one such step undid a whole training run in our
        comparisons (digits, saddle; see the optimizer-comparison page).

    Examples
    --------
    >>> import torch
    >>> from hvpseries.optim import KrylovSFN
    >>> x = torch.tensor([1.0, 1.0], dtype=torch.float64, requires_grad=True)
    >>> weights = torch.tensor([2.0, -1.0], dtype=torch.float64)
    >>> loss = lambda: (weights * x**2).sum() + (x**4).sum()
    >>> optimizer = KrylovSFN([x], damping=0.1)
    >>> for _ in range(30):
    ...     _ = optimizer.step(loss)
    >>> bool(loss() < -0.2)
    True
    """

    def __init__(
        self,
        params: Iterable[Any],
        *,
        damping: float = 1.0,
        rtol: float = 1e-3,
        maxiter: int | None = 40,
        method: str = "lanczos",
        adaptive: bool = True,
        lr: float | None = None,
        momentum: float | None = None,
        damping_factor: float = 0.9,
        damping_min: float = 1e-8,
        damping_max: float = 1e4,
        reject_increase: bool = True,
    ) -> None:
        check_tolerances(rtol, 0.0)
        check_maxiter(maxiter)
        check_choice(method, "method", _ABS_INV_METHODS)
        super().__init__(
            params,
            damping=damping,
            adaptive=adaptive,
            lr=lr,
            momentum=momentum,
            damping_factor=damping_factor,
            damping_min=damping_min,
            damping_max=damping_max,
            reject_increase=reject_increase,
        )
        self._solver_options = {"rtol": rtol, "maxiter": maxiter, "method": method}

    def _direction(
        self, hessian: LinearOperator, gradient: torch.Tensor, damping: float, state: dict[str, Any]
    ) -> tuple[torch.Tensor, Any]:
        result = abs_inv(hessian, gradient, damping=damping, **self._solver_options)
        return result.x, result
