"""The models of ``hvpseries train``: ``--model`` strings and the multilayer perceptrons."""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any

from ._dependencies import require

__all__ = ["ModelSpec", "build_model", "parse_model_spec"]

ACTIVATIONS = ("tanh", "relu", "gelu", "softplus", "sigmoid")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A parsed ``--model`` string: hidden layer widths and the activation."""

    hidden: tuple[int, ...]
    activation: str

    def __str__(self) -> str:
        if not self.hidden:
            return "linear"
        widths = ",".join(str(width) for width in self.hidden)
        return f"mlp:{widths}:{self.activation}"


def parse_model_spec(spec: str) -> ModelSpec:
    """Parse ``"mlp:50"``, ``"mlp:50,50"``, ``"mlp:32:relu"`` or ``"linear"``.

    Parameters
    ----------
    spec : str
        ``mlp:W1[,W2,...][:ACTIVATION]`` with positive widths and an activation among tanh
        (default; smooth, so the Hessian is informative), relu, gelu, softplus and sigmoid; or
        ``linear`` (no hidden layer: linear or softmax regression, a convex problem).

    Returns
    -------
    ModelSpec

    Raises
    ------
    ValueError
        For anything else, with the expected form in the message.

    Examples
    --------
    >>> parse_model_spec("mlp:50,20")
    ModelSpec(hidden=(50, 20), activation='tanh')
    >>> str(parse_model_spec("mlp:8:relu"))
    'mlp:8:relu'
    """
    expected = "expected 'mlp:50', 'mlp:50,50', 'mlp:50:relu' or 'linear'"
    if not isinstance(spec, str):
        message = f"model must be a string ({expected}), got {spec!r}"
        raise TypeError(message)
    if spec.strip() == "linear":
        return ModelSpec((), "tanh")
    kind, _, rest = spec.partition(":")
    if kind != "mlp" or not rest:
        message = f"unknown model {spec!r}: {expected}"
        raise ValueError(message)
    widths_text, _, activation = rest.partition(":")
    activation = activation or "tanh"
    if activation not in ACTIVATIONS:
        message = f"unknown activation {activation!r} in model {spec!r}: choose from " + ", ".join(
            ACTIVATIONS
        )
        raise ValueError(message)
    try:
        widths = tuple(int(width) for width in widths_text.split(","))
    except ValueError:
        message = f"bad layer widths {widths_text!r} in model {spec!r}: {expected}"
        raise ValueError(message) from None
    if any(width < 1 for width in widths):
        message = f"layer widths must be positive integers, got {widths_text!r} in {spec!r}"
        raise ValueError(message)
    return ModelSpec(widths, activation)


def build_model(
    spec: str | ModelSpec,
    n_features: int,
    n_outputs: int,
    *,
    seed: int = 0,
    init_scale: float = 1.0,
    dtype: Any = None,
    device: Any = "cpu",
) -> Any:
    """Build the multilayer perceptron described by ``spec`` as a ``torch.nn.Sequential``.

    Parameters
    ----------
    spec : str or ModelSpec
        See :func:`parse_model_spec`.
    n_features, n_outputs : int
        Input and output widths.
    seed : int, default 0
        Seed of the initial weights (PyTorch's default initialisation); the global random
        state is left untouched.
    init_scale : float, default 1.0
        Multiplies every initial parameter; small values start near the saddle point at zero.
    dtype : torch.dtype, optional
        Default ``torch.float32``.
    device : str or torch.device, default "cpu"

    Returns
    -------
    torch.nn.Sequential

    Examples
    --------
    >>> model = build_model("mlp:5", 3, 2, seed=0)
    >>> sum(p.numel() for p in model.parameters())  # 3*5 + 5 + 5*2 + 2
    32
    """
    torch = require("torch", "torch", "training")
    if isinstance(spec, str):
        spec = parse_model_spec(spec)
    if not (isinstance(init_scale, float | int) and math.isfinite(init_scale) and init_scale > 0):
        message = f"init_scale must be a positive number, got {init_scale!r}"
        raise ValueError(message)
    activation = {
        "tanh": torch.nn.Tanh,
        "relu": torch.nn.ReLU,
        "gelu": torch.nn.GELU,
        "softplus": torch.nn.Softplus,
        "sigmoid": torch.nn.Sigmoid,
    }[spec.activation]
    widths = [n_features, *spec.hidden, n_outputs]
    layers: list[Any] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for index, (width_in, width_out) in enumerate(itertools.pairwise(widths)):
            layers.append(torch.nn.Linear(width_in, width_out))
            if index < len(widths) - 2:
                layers.append(activation())
    model = torch.nn.Sequential(*layers)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(init_scale)
    return model.to(dtype=dtype or torch.float32, device=device)
