"""The optimizers of ``hvpseries train``, constructed by their command-line names."""

from __future__ import annotations

import inspect
import math
from typing import Any

from ._dependencies import MissingDependencyError, require

__all__ = ["DEFAULT_LR", "OPTIMIZERS", "make_optimizer"]

OPTIMIZERS = ("series-sfn", "krylov-sfn", "lazy-sfn", "exact-sfn", "adam", "sgd")
SFN_OPTIMIZERS = {
    "series-sfn": "SeriesSFN",
    "krylov-sfn": "KrylovSFN",
    "lazy-sfn": "LazySFN",
    "exact-sfn": "ExactSFN",
}
# First-order defaults: Adam's own default; SGD with momentum 0.9 at a rate that trains the
# standardised built-in problems without diverging.
DEFAULT_LR = {"adam": 1e-3, "sgd": 0.05}
SGD_MOMENTUM = 0.9


def make_optimizer(
    name: str,
    params: Any,
    *,
    lr: float | None = None,
    damping: float | None = None,
    options: dict[str, Any] | None = None,
) -> Any:
    """Construct an optimizer by its command-line name.

    Parameters
    ----------
    name : {"series-sfn", "krylov-sfn", "lazy-sfn", "exact-sfn", "adam", "sgd"}
        The saddle-free Newton optimizers of :mod:`hvpseries.optim` (``SeriesSFN``,
        ``KrylovSFN``, ``LazySFN``, ``ExactSFN``), ``torch.optim.Adam``, or ``torch.optim.SGD`` with
        momentum 0.9.
    params : iterable
        Model parameters.
    lr : float, optional
        Learning rate. Default: 1e-3 for Adam, 0.05 for SGD, and the optimizer's own default
        for the SFN optimizers (an adaptive step size).
    damping : float, optional
        Initial damping of the SFN optimizers (their default when None); refused for Adam/SGD.
    options : dict, optional
        Further keyword arguments of the optimizer's constructor, e.g. ``{"maxiter": 40}`` for
        ``krylov-sfn`` or ``{"momentum": 0.0}`` for ``sgd``.

    Returns
    -------
    torch.optim.Optimizer

    Raises
    ------
    ValueError
        For an unknown name, a non-positive ``lr``, or an option the optimizer does not take.
    MissingDependencyError
        Without torch, or for an SFN optimizer when :mod:`hvpseries.optim` is unavailable.
    """
    torch = require("torch", "torch", f"--optimizer {name}")
    if name not in OPTIMIZERS:
        message = f"unknown optimizer {name!r}: choose from {', '.join(OPTIMIZERS)}"
        raise ValueError(message)
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        message = f"the learning rate of {name} must be a positive number, got {lr!r}"
        raise ValueError(message)
    if damping is not None and not (math.isfinite(damping) and damping >= 0):
        message = f"the damping of {name} must be a number >= 0, got {damping!r}"
        raise ValueError(message)
    keywords: dict[str, Any] = {}
    if name in DEFAULT_LR:
        if damping is not None:
            message = f"--damping applies to the SFN optimizers only, not to {name}"
            raise ValueError(message)
        cls = torch.optim.Adam if name == "adam" else torch.optim.SGD
        keywords["lr"] = DEFAULT_LR[name] if lr is None else lr
        if name == "sgd":
            keywords["momentum"] = SGD_MOMENTUM
    else:
        cls = _sfn_class(name)
        accepted = inspect.signature(cls).parameters
        if lr is not None:
            if "lr" not in accepted:
                message = f"{name} sets its own step size and takes no learning rate (--lr)"
                raise ValueError(message)
            # A given learning rate replaces the adaptive step size (and momentum).
            keywords["lr"] = lr
            if "adaptive" in accepted:
                keywords["adaptive"] = False
        if damping is not None:
            keywords["damping"] = damping
    accepted = inspect.signature(cls).parameters
    for key, value in (options or {}).items():
        if key == "params" or key not in accepted:
            known = ", ".join(k for k in accepted if k not in ("params", "self"))
            message = f"{name} has no option {key!r}; its options are: {known}"
            raise ValueError(message)
        keywords[key] = value
    try:
        return cls(params, **keywords)
    except (TypeError, ValueError) as error:
        message = f"cannot construct {name} ({cls.__name__}): {error}"
        raise ValueError(message) from error


def _sfn_class(name: str) -> type:
    try:  # torch is optional: hvpseries.optim is imported only when an SFN optimizer is asked for
        from ..optim import ExactSFN, KrylovSFN, LazySFN, SeriesSFN
    except ImportError as error:
        message = (
            f"--optimizer {name} needs hvpseries.optim (the saddle-free Newton optimizers), "
            f"which failed to import: {error}"
        )
        raise MissingDependencyError(message) from error
    classes = {
        "ExactSFN": ExactSFN,
        "KrylovSFN": KrylovSFN,
        "LazySFN": LazySFN,
        "SeriesSFN": SeriesSFN,
    }
    return classes[SFN_OPTIMIZERS[name]]
