"""The saddle-free Newton step shared by every optimizer in :mod:`hvpseries.optim`.

Spec section 6 (Oldewage et al., TMLR 2024): a direction ``u ~ (|H| + d I)^-1 g``, an adaptive
learning rate and momentum chosen by minimising the quadratic model along ``u`` and the previous
update (as in K-FAC), and Levenberg-Marquardt adaptation of the damping ``d``. Subclasses only
say how ``u`` is computed.
"""

from __future__ import annotations

import abc
import math
import numbers
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch

from .._counting import CountingOperator
from .._linear_operator import LinearOperator
from .._result import Status
from ._closure_hessian import evaluate_closure, flatten, hessian_of_closure, unflatten_into

__all__ = ["SaddleFreeNewton"]


def _check_number(value: Any, name: str, *, low: float, low_inclusive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        message = f"{name} must be a real number, got {value!r}"
        raise TypeError(message)
    value = float(value)
    too_low = value < low if low_inclusive else value <= low
    if not math.isfinite(value) or too_low:
        bound = ">=" if low_inclusive else ">"
        message = f"{name} must be finite and {bound} {low}, got {value!r}"
        raise ValueError(message)
    return value


# A solver that ran out of iterations (or stagnated) still returns its best approximation of
# the direction: the step uses it, counts it as inexact, and the damping update judges it.
_INEXACT = (Status.MAX_ITERATIONS, Status.STAGNATED)


def _model_minimiser(ug: float, cross: float, q: float, gd: float) -> tuple[float, float]:
    """Minimise the quadratic model over ``alpha u + mu delta`` (``delta`` the previous update).

    Solves ``[[u.Cu, u.C delta], [u.C delta, delta.C delta]] [alpha, mu] = [u.g, delta.g]``
    with the Gram entries approximated by ``ug``, ``cross`` and ``q``. The true Gram matrix (in
    the metric ``C = |H| + dI``) is positive definite; when the approximation is not, the
    model has no minimiser and the step falls back to the minimiser along ``u`` alone:
    ``alpha = 1``, ``mu = 0``.
    """
    determinant = ug * q - cross * cross
    finite = all(math.isfinite(value) for value in (ug, cross, q, gd, determinant))
    if not finite or ug <= 0 or q <= 0 or determinant <= 1e-12 * ug * q:
        return 1.0, 0.0
    return (ug * q - cross * gd) / determinant, (ug * gd - cross * ug) / determinant


class SaddleFreeNewton(torch.optim.Optimizer, metaclass=abc.ABCMeta):
    """Base class: the saddle-free Newton step with adaptive rates and damping.

    Subclasses implement ``_direction(hessian, gradient, damping, state)``, returning the
    direction ``u ~ (|H| + d I)^-1 g`` and the :class:`hvpseries.SolveResult` that produced it.
    """

    def __init__(
        self,
        params: Iterable[Any],
        *,
        damping: float,
        adaptive: bool,
        lr: float | None,
        momentum: float | None,
        damping_factor: float,
        damping_min: float,
        damping_max: float,
        reject_increase: bool,
    ) -> None:
        damping = _check_number(damping, "damping", low=0.0)
        damping_factor = _check_number(
            damping_factor, "damping_factor", low=0.0, low_inclusive=False
        )
        if damping_factor > 1:
            message = f"damping_factor must be in (0, 1], 1 keeps it fixed; got {damping_factor}"
            raise ValueError(message)
        damping_min = _check_number(damping_min, "damping_min", low=0.0)
        damping_max = _check_number(damping_max, "damping_max", low=damping_min)
        if adaptive and (lr is not None or momentum is not None):
            message = (
                "lr and momentum are chosen adaptively when adaptive=True; pass adaptive=False to "
                "fix them"
            )
            raise ValueError(message)
        lr = 1.0 if lr is None else _check_number(lr, "lr", low=0.0, low_inclusive=False)
        momentum = 0.0 if momentum is None else _check_number(momentum, "momentum", low=0.0)
        defaults = {
            "damping": damping,
            "adaptive": bool(adaptive),
            "lr": lr,
            "momentum": momentum,
            "damping_factor": damping_factor,
            "damping_min": damping_min,
            "damping_max": damping_max,
            "reject_increase": bool(reject_increase),
        }
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            message = (
                f"{type(self).__name__} takes one parameter group (its step couples all parameters "
                f"through the Hessian), got {len(self.param_groups)}"
            )
            raise ValueError(message)
        self._params = [p for p in self.param_groups[0]["params"] if p.requires_grad]
        if not self._params:
            message = f"{type(self).__name__} got no parameters that require gradients"
            raise ValueError(message)

    # ------------------------------------------------------------------ state
    @property
    def _state(self) -> dict[str, Any]:
        state = self.state[self._params[0]]
        if not state:
            reference = self._params[0]
            n = sum(p.numel() for p in self._params)
            zeros = torch.zeros(n, dtype=reference.dtype, device=reference.device)
            state.update(
                damping=self.param_groups[0]["damping"],
                previous_update=zeros,
                curvature_times_update=zeros.clone(),
                previous_alpha=0.0,
                n_step=0,
                n_skipped=0,
                n_inexact=0,
                n_rejected=0,
                n_hvp=0,
                n_gradient=0,
                n_loss=0,
            )
            self._initial_state(state)
        return state

    def _initial_state(self, state: dict[str, Any]) -> None:
        """Add subclass-specific entries to a fresh state."""

    @property
    def counters(self) -> dict[str, int]:
        """Work done so far.

        Keys: ``hvp``, ``gradient`` and ``loss`` (evaluations), ``step`` (accepted steps),
        ``skipped`` (non-finite loss, gradient or direction, or a failed solve), ``inexact``
        (directions from a solver that reached its iteration limit) and ``rejected`` (loss
        increase).
        """
        state = self._state
        return {
            "hvp": state["n_hvp"],
            "gradient": state["n_gradient"],
            "loss": state["n_loss"],
            "step": state["n_step"],
            "skipped": state["n_skipped"],
            "inexact": state["n_inexact"],
            "rejected": state["n_rejected"],
        }

    @property
    def damping(self) -> float:
        """The current (adapted) damping ``d``."""
        return float(self._state["damping"])

    # ------------------------------------------------------------------ step
    @abc.abstractmethod
    def _direction(
        self, hessian: LinearOperator, gradient: torch.Tensor, damping: float, state: dict[str, Any]
    ) -> tuple[torch.Tensor, Any]:
        """Return ``u ~ (|H| + d I)^-1 g`` and the SolveResult that computed it."""

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> torch.Tensor:  # type: ignore[override]
        """Take one saddle-free Newton step.

        Parameters
        ----------
        closure : callable
            Re-evaluates the model on the current batch and returns the loss (a scalar tensor),
            as for :class:`torch.optim.LBFGS`. It may call ``loss.backward()`` or not: the
            optimizer computes the gradient and Hessian-vector products from the loss's graph
            itself. It is called twice per step (before and after the update).

        Returns
        -------
        torch.Tensor
            The loss before the step.
        """
        if closure is None:
            message = (
                f"{type(self).__name__}.step needs a closure that re-evaluates and returns the "
                "loss, e.g. optimizer.step(lambda: loss_fn(model(x), y))"
            )
            raise ValueError(message)
        group, state = self.param_groups[0], self._state
        loss = evaluate_closure(closure)
        state["n_loss"] += 1
        if not torch.isfinite(loss):
            self._skip(state, group, "the loss is not finite")
            return loss.detach()
        gradient, hessian = hessian_of_closure(loss, self._params)
        state["n_gradient"] += 1
        if not bool(torch.all(torch.isfinite(gradient))):
            self._skip(state, group, "the gradient is not finite")
            return loss.detach()
        counted = CountingOperator(hessian)
        direction, result = self._direction(counted, gradient, state["damping"], state)
        state["n_hvp"] += counted.n_matvec
        usable = result.converged or result.status in _INEXACT
        if not usable or not bool(torch.all(torch.isfinite(direction))):
            self._skip(state, group, f"the direction solve failed ({result.status.name})")
            return loss.detach()
        state["n_inexact"] += int(result.status in _INEXACT)
        alpha, mu, predicted = self._rates(group, state, direction, gradient)
        update = direction * alpha + state["previous_update"] * mu
        self._move(update, -1.0)
        new_loss = evaluate_closure(closure).detach()
        state["n_loss"] += 1
        increased = not bool(torch.isfinite(new_loss)) or bool(new_loss > loss)
        if increased and (group["reject_increase"] or not bool(torch.isfinite(new_loss))):
            self._move(update, 1.0)
            state["n_rejected"] += 1
            self._adapt_damping(group, state, reduction_ratio=-math.inf)
            return loss.detach()
        state["curvature_times_update"] = state["curvature_times_update"] * mu + gradient * alpha
        state["previous_update"] = update
        state["previous_alpha"] = alpha
        state["n_step"] += 1
        ratio = float(new_loss - loss) / predicted if predicted < 0 else -math.inf
        self._adapt_damping(group, state, reduction_ratio=ratio)
        return loss.detach()

    def _rates(
        self,
        group: dict[str, Any],
        state: dict[str, Any],
        direction: torch.Tensor,
        gradient: torch.Tensor,
    ) -> tuple[float, float, float]:
        """Return ``alpha``, ``mu`` and the quadratic model's predicted loss change."""
        previous, curvature = state["previous_update"], state["curvature_times_update"]
        ug = float(torch.dot(direction, gradient))
        gd = float(torch.dot(gradient, previous))
        # Spec section 6: u.C.delta ~ g.delta (as C u ~ g) and delta.C.delta ~ alpha_prev
        # delta.buf, buf the running estimate of C delta (1 before any step).
        cross = gd
        q = state["previous_alpha"] * float(torch.dot(previous, curvature))
        q = 1.0 if q == 0 else q
        if not group["adaptive"]:
            alpha, mu = group["lr"], group["momentum"]
        elif state["n_step"] == 0:  # no previous update yet: alpha = 1, mu = 0
            alpha, mu = 1.0, 0.0
        else:
            alpha, mu = _model_minimiser(ug, cross, q, gd)
        predicted = (
            0.5 * (alpha**2 * ug + 2 * alpha * mu * cross + mu**2 * q) - alpha * ug - mu * gd
        )
        return alpha, mu, predicted

    def _move(self, update: torch.Tensor, sign: float) -> None:
        for p, piece in zip(self._params, unflatten_into(update, self._params), strict=True):
            p.add_(piece, alpha=sign)

    def _adapt_damping(
        self, group: dict[str, Any], state: dict[str, Any], *, reduction_ratio: float
    ) -> None:
        factor = group["damping_factor"]
        damping = state["damping"]
        if reduction_ratio > 0.75:
            damping *= factor
        elif reduction_ratio < 0.25:
            damping /= factor
        state["damping"] = min(max(damping, group["damping_min"]), group["damping_max"])

    def _skip(self, state: dict[str, Any], group: dict[str, Any], reason: str) -> None:
        state["n_skipped"] += 1
        self._adapt_damping(group, state, reduction_ratio=-math.inf)
        message = (
            f"{type(self).__name__} skipped a step: {reason}; the parameters are unchanged and the "
            f"damping was raised to {state['damping']:.3g}"
        )
        warnings.warn(message, RuntimeWarning, stacklevel=3)

    def flat_parameters(self) -> torch.Tensor:
        """Return the optimizer's parameters as one flat vector (a copy)."""
        return flatten([p.detach() for p in self._params]).clone()
