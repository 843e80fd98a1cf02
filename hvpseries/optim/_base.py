"""The saddle-free Newton step shared by every optimizer in :mod:`hvpseries.optim`.

Spec section 6 (Oldewage et al., TMLR 2024): a direction ``u ~ (|H| + d I)^-1 g``, an adaptive
learning rate and momentum chosen by minimising the quadratic model along ``u`` and the previous
update (as in K-FAC; the model is in ``_quadratic_model``), and Levenberg-Marquardt adaptation
of the damping ``d``. Subclasses only say how ``u`` is computed.
"""

from __future__ import annotations

import abc
import math
import numbers
import sys
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch

from .._core._result import Status
from .._operators._base import LinearOperator
from .._operators._counting import CountingOperator
from ..nn._params import flatten, unflatten
from ._closure_hessian import evaluate_closure, gradient_of_closure, hessian_of_closure
from ._quadratic_model import combination, rates

__all__ = ["LocalClosureWarning", "SaddleFreeNewton"]


class LocalClosureWarning(RuntimeWarning):
    """A closure step ran inside an initialised ``torch.distributed`` group of several ranks.

    ``step(closure)`` differentiates the closure's loss on this rank only: nothing is
    synchronised, and the ranks' parameters drift apart if their data differ. For data
    parallelism build the optimizer with ``from_model(model, loss_fn)``, whose products,
    gradient and loss are reduced over the group. Issued once per optimizer; silence it with
    ``warnings.filterwarnings("ignore", category=LocalClosureWarning)`` if purely local
    optimisation on each rank is intended.

    Examples
    --------
    >>> from hvpseries.optim import LocalClosureWarning
    >>> issubclass(LocalClosureWarning, RuntimeWarning)
    True
    """


def _caller_stacklevel() -> int:
    """Return the ``stacklevel`` of the first caller outside hvpseries and torch.

    ``step`` is wrapped by torch (``no_grad``, the optimizer's hooks), so a fixed level would
    point into torch.
    """
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith(
        ("hvpseries.", "torch.")
    ):
        frame = frame.f_back
        level += 1
    return level


def _several_ranks() -> int:
    """Return the size of the default process group if initialised with several ranks, else 0."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.get_world_size()
    return 0


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


# A solver that ran out of iterations (stagnated, or could not verify its error) still returns
# its best approximation of the direction: the step uses it, counts it as inexact, and the
# damping update judges it.
_INEXACT = (Status.MAX_ITERATIONS, Status.STAGNATED, Status.UNVERIFIED)


def _all_finite(vector: torch.Tensor) -> bool:
    # max |v| is NaN or infinite exactly when an entry is (one reduction, no boolean mask).
    return math.isfinite(float(vector.abs().max()))


class SaddleFreeNewton(torch.optim.Optimizer, metaclass=abc.ABCMeta):
    """Base class: the saddle-free Newton step with adaptive rates and damping.

    Subclasses implement ``_direction(hessian, gradient, damping, state)``, returning the
    direction ``u ~ (|H| + d I)^-1 g`` and the :class:`hvpseries.SolveResult` that produced it,
    and may extend ``_check_parameters(params)``.

    As in :mod:`torch.optim`, each step acts on the parameters that require gradients at that
    moment (see :meth:`step`): the others are left untouched.
    """

    # How the operator built by from_model applies blocks (HessianOperator's block_strategy).
    _curvature_block_strategy = "auto"

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
        if damping > damping_max:
            message = f"damping={damping} is above damping_max={damping_max}"
            raise ValueError(message)
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
        self._trainable()  # at least one parameter to train, of a dtype the step works in
        self._curvature_factory: Callable[[Any, list[torch.Tensor]], Any] | None = None
        self._curvature: Any = None
        self._warned_local = False

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add the (only) parameter group; a second one is refused.

        The step couples all parameters through the Hessian, so they form one group.
        """
        if self.param_groups:
            message = (
                f"{type(self).__name__} takes one parameter group (its step couples all "
                "parameters through the Hessian); create the optimizer with all of them"
            )
            raise ValueError(message)
        super().add_param_group(param_group)

    # ------------------------------------------------------------------ parameters
    def _trainable(self) -> tuple[tuple[int, ...], list[torch.Tensor]]:
        """Return the positions in the group and the tensors of the parameters to train now.

        Those that require gradients at this moment, checked by :meth:`_check_parameters`.
        """
        group = self.param_groups[0]["params"]
        positions = tuple(i for i, p in enumerate(group) if p.requires_grad)
        params = [group[i] for i in positions]
        self._check_parameters(params)
        return positions, params

    def _check_parameters(self, params: list[torch.Tensor]) -> None:
        """Refuse a set of trainable parameters that the step cannot work on.

        Raises
        ------
        ValueError
            If there are none.
        TypeError
            If they are not real floating tensors of one dtype.
        """
        name = type(self).__name__
        if not params:
            message = (
                f"{name} has no parameters that require gradients; unfreeze some with "
                "p.requires_grad_(True)"
            )
            raise ValueError(message)
        dtypes = {p.dtype for p in params}
        if len(dtypes) > 1 or not params[0].dtype.is_floating_point:
            names = ", ".join(sorted(str(d).replace("torch.", "") for d in dtypes))
            message = (
                f"{name} needs real floating parameters of one dtype, got {names}; "
                "convert the model with model.float() or model.double()"
            )
            raise TypeError(message)

    # ------------------------------------------------------------------ state
    @property
    def _state(self) -> dict[str, Any]:
        state = self.state[self.param_groups[0]["params"][0]]
        if not state:
            state.update(
                damping=self.param_groups[0]["damping"],
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

    @staticmethod
    def _follow_trainable(
        state: dict[str, Any], positions: tuple[int, ...], params: list[torch.Tensor]
    ) -> None:
        """Start the momentum afresh if the parameters to train are not those it was built over.

        The previous update and the running estimate of its curvature product are vectors over
        the trainable parameters; ``state["trainable"]`` holds their positions in the group.
        """
        if state.get("trainable") == positions:
            return
        reference = params[0]
        n = sum(p.numel() for p in params)
        zeros = torch.zeros(n, dtype=reference.dtype, device=reference.device)
        state.update(
            trainable=positions,
            previous_update=zeros,
            curvature_times_update=zeros.clone(),
            previous_alpha=0.0,
        )

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
    def _needs_curvature(self, state: dict[str, Any]) -> bool:
        """Whether this step's direction applies the Hessian.

        When not, a closure step computes the plain gradient (no graph for products) and
        ``_direction`` gets ``hessian=None``.
        """
        return True

    @abc.abstractmethod
    def _direction(
        self, hessian: LinearOperator, gradient: torch.Tensor, damping: float, state: dict[str, Any]
    ) -> tuple[torch.Tensor, Any]:
        """Return ``u ~ (|H| + d I)^-1 g`` and the SolveResult that computed it."""

    @torch.no_grad()
    def step(  # type: ignore[override]
        self, closure: Callable[[], Any] | None = None, *, data: Any = None
    ) -> torch.Tensor:
        """Take one saddle-free Newton step.

        Parameters
        ----------
        closure : callable
            Re-evaluates the model on the current batch and returns the loss (a scalar tensor),
            as for :class:`torch.optim.LBFGS`. It may call ``loss.backward()`` or not: the
            optimizer computes the gradient and Hessian-vector products from the loss's graph
            itself. It is called twice per step (before and after the update).
        data : tuple or iterable of tuples, optional
            Instead of a closure, for an optimizer built with :meth:`from_model`: the batch
            ``(inputs, targets)`` (or several) whose mean loss the step decreases.

        Returns
        -------
        torch.Tensor
            The loss before the step.

        Raises
        ------
        ValueError
            If no parameter requires gradients, or the closure or ``data`` is missing or not
            the one this optimizer takes.

        Notes
        -----
        The step acts on the parameters that require gradients when it is called, as
        :mod:`torch.optim` optimizers do: the Hessian and gradient are those of the loss with
        respect to them, and the others are left untouched. The momentum (the previous update
        and its curvature estimate, vectors over the trainable parameters) is reset when that
        set differs from the previous step's, so the first step after freezing or unfreezing a
        parameter is taken without momentum; the damping, the counters and the series scale
        of :class:`SeriesSFN` carry on.

        A step is applied whole or not at all: if anything raises during it (the closure,
        either evaluation of the loss, the solve, a warning turned into an error), the
        parameters are restored bit for bit, the state is left as it was and the exception
        propagates.
        """
        positions, params = self._trainable()
        state = dict(self._state)  # the step works on a copy, kept only if it completes
        saved = [p.detach().clone() for p in params]
        try:
            loss = self._step(closure, data, positions, params, saved, state)
        except BaseException:
            self._restore(params, saved)
            raise
        self._state.update(state)
        return loss

    def _step(
        self,
        closure: Callable[[], Any] | None,
        data: Any,
        positions: tuple[int, ...],
        params: list[torch.Tensor],
        saved: list[torch.Tensor],
        state: dict[str, Any],
    ) -> torch.Tensor:
        """Take the step of :meth:`step` on ``params``, recording it in ``state``."""
        group = self.param_groups[0]
        self._follow_trainable(state, positions, params)
        loss, gradient, hessian = self._loss_gradient_hessian(
            closure, data, params, curvature=self._needs_curvature(state)
        )
        state["n_loss"] += 1
        if not math.isfinite(float(loss)):
            self._skip(state, group, "the loss is not finite")
            return loss
        state["n_gradient"] += 1
        all_finite = _all_finite if hessian is None else hessian.vector_space.all_finite
        if not all_finite(gradient):
            self._skip(state, group, "the gradient is not finite")
            return loss
        counted = None if hessian is None else CountingOperator(hessian)
        direction, result = self._direction(counted, gradient, state["damping"], state)
        state["n_hvp"] += 0 if counted is None else counted.n_matvec
        del counted, hessian  # release the closure's graph before evaluating it again
        usable = result.usable or result.status in _INEXACT
        if not usable or not all_finite(direction):
            self._skip(state, group, f"the direction solve failed ({result.status.name})")
            return loss
        state["n_inexact"] += int(result.status in _INEXACT)
        alpha, mu, predicted = rates(group, state, direction, gradient)
        update = combination(direction, alpha, state["previous_update"], mu)
        self._move(params, update, -1.0)
        new_loss = self._loss_after_step(closure)
        state["n_loss"] += 1
        change = float(new_loss - loss)
        finite = math.isfinite(float(new_loss))
        if not finite or (group["reject_increase"] and change > 0):
            self._restore(params, saved)
            state["n_rejected"] += 1
            self._adapt_damping(group, state, reduction_ratio=-math.inf)
            if not finite:
                message = (
                    f"{type(self).__name__} undid a step after which the loss was not finite; "
                    f"the damping was raised to {state['damping']:.3g}"
                )
                warnings.warn(message, RuntimeWarning, stacklevel=_caller_stacklevel())
            return loss
        state["curvature_times_update"] = combination(
            gradient, alpha, state["curvature_times_update"], mu
        )
        state["previous_update"] = update
        state["previous_alpha"] = alpha
        state["n_step"] += 1
        ratio = change / predicted if predicted < 0 else -math.inf
        self._adapt_damping(group, state, reduction_ratio=ratio)
        return loss

    def _loss_gradient_hessian(
        self,
        closure: Callable[[], Any] | None,
        data: Any,
        params: list[torch.Tensor],
        *,
        curvature: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, LinearOperator | None]:
        # Without ``curvature`` a closure step returns no operator (the plain gradient costs
        # less than one with the graph for products); the operator from_model built is
        # returned either way (it builds its products' graph only when they are applied).
        name = type(self).__name__
        if self._curvature_factory is None:
            if closure is None or data is not None:
                message = (
                    f"{name}.step needs a closure that re-evaluates and returns the loss, e.g. "
                    "optimizer.step(lambda: loss_fn(model(x), y)); data= is only for "
                    f"optimizers built with {name}.from_model"
                )
                raise ValueError(message)
            self._warn_if_distributed()
            loss = evaluate_closure(closure)
            if not torch.isfinite(loss):
                return loss.detach(), torch.zeros(0), None  # type: ignore[return-value]
            if not curvature:
                return loss.detach(), gradient_of_closure(loss, params), None
            gradient, hessian = hessian_of_closure(loss, params)
            return loss.detach(), gradient, hessian
        if data is None or closure is not None:
            message = (
                f"this {name} was built with from_model: pass the batch as "
                f"optimizer.step(data=(inputs, targets)), without a closure"
            )
            raise ValueError(message)
        built_over = None if self._curvature is None else [id(p) for p in self._curvature.params]
        if built_over == [id(p) for p in params]:
            self._curvature.update(data)
        else:  # the first step, or other parameters require gradients now
            self._curvature = self._curvature_factory(data, params)
        loss, gradient = self._curvature.loss_and_gradient()
        return loss.detach(), gradient, self._curvature

    def _warn_if_distributed(self) -> None:
        ranks = _several_ranks()
        if ranks and not self._warned_local:
            self._warned_local = True
            name = type(self).__name__
            message = (
                f"{name}.step(closure) runs inside an initialised torch.distributed group of "
                f"{ranks} ranks but differentiates this rank's closure only: steps are not "
                f"synchronised across ranks. For data parallelism build the optimizer with "
                f"{name}.from_model(model, loss_fn) and pass each rank's shard as "
                "step(data=...); filter LocalClosureWarning if local steps are intended"
            )
            warnings.warn(message, LocalClosureWarning, stacklevel=_caller_stacklevel())

    def _loss_after_step(self, closure: Callable[[], Any] | None) -> torch.Tensor:
        if self._curvature is None:
            return evaluate_closure(closure).detach()
        return self._curvature.loss()  # a forward pass: the gradient there is not needed

    @classmethod
    def from_model(
        cls,
        model: torch.nn.Module,
        loss_fn: Callable[[Any, Any], torch.Tensor],
        *,
        mode: str = "auto",
        microbatch_size: int | None = None,
        process_group: Any = None,
        **options: Any,
    ) -> SaddleFreeNewton:
        """Build the optimizer for a model, with HVPs from :class:`hvpseries.nn.HessianOperator`.

        Then ``optimizer.step(data=(inputs, targets))`` takes a step on that batch: the
        operator gives the exact Hessian of the batch's mean loss (BatchNorm in train mode
        included, running statistics untouched), chooses the fastest working HVP ``mode`` and
        can split the batch (``microbatch_size``). ``options`` are the optimizer's own.

        **Data parallelism.** ``process_group`` goes to the operator (see
        :class:`hvpseries.nn.HessianOperator`): by default the group of a
        ``DistributedDataParallel`` model, else the initialised default group, else none;
        ``False`` for a local optimizer. Every rank then calls ``step(data=shard)`` with its
        own shard: the loss, gradient and every HVP are of the mean loss over all ranks'
        samples, each one all-reduce, identical on every rank. The rest of the step (the
        direction solve, the learning rate, the damping update and the rejection test) is
        computed on every rank from those identical numbers by the same deterministic code,
        without random numbers, so the ranks end every step with bit-identical parameters
        (given identical starting parameters, which the operator checks, and the same
        hardware and thread settings on every rank). A step costs ``1 + (number of HVPs)``
        all-reduces of about ``n`` numbers (the gradient, the products), one of one number
        (the loss after the step, from a forward pass) and one of two numbers (the sample
        counts of the new shard).

        **Frozen parameters.** The optimizer holds all of the model's parameters and, like
        :meth:`step`, trains those that require gradients at each step. The operator is built
        over them at the first step and built again (a new :class:`~hvpseries.nn.HessianOperator`,
        with its construction's checks and, in a process group, its agreement check, so every
        rank must freeze the same parameters) at the first step after that set changes.

        Examples
        --------
        >>> import torch
        >>> from hvpseries.optim import SeriesSFN
        >>> model = torch.nn.Linear(3, 1).double()
        >>> optimizer = SeriesSFN.from_model(model, torch.nn.functional.mse_loss, damping=0.1)
        >>> inputs, targets = torch.randn(16, 3).double(), torch.randn(16, 1).double()
        >>> first = optimizer.step(data=(inputs, targets))
        >>> bool(optimizer.step(data=(inputs, targets)) < first)
        True
        """
        from ..nn import HessianOperator

        optimizer = cls(model.parameters(), **options)

        def factory(data: Any, params: list[torch.Tensor]) -> HessianOperator:
            """Build the operator of ``data`` over the parameters trained now."""
            return HessianOperator(
                model,
                loss_fn,
                data,
                params=params,
                mode=mode,
                microbatch_size=microbatch_size,
                process_group=process_group,
                block_strategy=cls._curvature_block_strategy,
            )

        optimizer._curvature_factory = factory
        return optimizer

    @staticmethod
    def _move(params: list[torch.Tensor], update: torch.Tensor, sign: float) -> None:
        for p, piece in zip(params, unflatten(update, params), strict=True):
            p.add_(piece, alpha=sign)

    @staticmethod
    def _restore(params: list[torch.Tensor], saved: list[torch.Tensor]) -> None:
        for p, before in zip(params, saved, strict=True):
            p.copy_(before)

    def _adapt_damping(
        self, group: dict[str, Any], state: dict[str, Any], *, reduction_ratio: float
    ) -> None:
        """Levenberg-Marquardt: lower ``d`` after a good step, raise it after a poor one.

        A damping already below ``damping_min`` (``0`` for the pure ``|H|^-1 g`` step) stays
        there while steps are good and jumps to ``damping_min`` at the first poor one.
        """
        factor = group["damping_factor"]
        damping = state["damping"]
        if factor == 1:
            return
        if reduction_ratio > 0.75:
            damping = max(damping * factor, min(damping, group["damping_min"]))
        elif reduction_ratio < 0.25:
            damping = max(damping / factor, group["damping_min"])
        state["damping"] = min(damping, group["damping_max"])

    def _skip(self, state: dict[str, Any], group: dict[str, Any], reason: str) -> None:
        state["n_skipped"] += 1
        self._adapt_damping(group, state, reduction_ratio=-math.inf)
        message = (
            f"{type(self).__name__} skipped a step: {reason}; the parameters are unchanged and the "
            f"damping was raised to {state['damping']:.3g}"
        )
        warnings.warn(message, RuntimeWarning, stacklevel=_caller_stacklevel())

    def flat_parameters(self) -> torch.Tensor:
        """Return the parameters that require gradients as one flat vector (a copy)."""
        return flatten([p.detach() for p in self._trainable()[1]]).clone()
