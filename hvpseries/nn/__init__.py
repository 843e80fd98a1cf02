"""Curvature of PyTorch models as hvpseries operators (needs ``pip install hvpseries[torch]``).

Operators
    :class:`HessianOperator` (Hessian-vector products of a model's mean loss, several modes)
    and :class:`GGNOperator` (generalised Gauss-Newton, positive semi-definite), both
    :class:`hvpseries.LinearOperator` on flat parameter vectors.
Parameters as vectors
    :func:`flatten_params`, :func:`unflatten_params`.
Warnings and errors
    :class:`ModeFallbackWarning` (a product mode failed and another took over),
    :class:`NondeterministicLossError` (``check_deterministic=True`` found randomness).

This subpackage imports torch; ``import hvpseries`` does not.
"""

try:
    import torch  # noqa: F401 (checked here for a helpful message)
except ImportError as error:  # pragma: no cover - exercised only without torch
    message = (
        "hvpseries.nn needs PyTorch, which is not installed; install it with "
        "`pip install hvpseries[torch]` (or follow https://pytorch.org for a CUDA build)"
    )
    raise ImportError(message) from error

from ._errors import AttentionBackendWarning, ModeFallbackWarning, NondeterministicLossError
from ._ggn import GGNOperator
from ._hessian import MODES, HessianOperator
from ._params import flatten_params, unflatten_params

__all__ = [
    # operators
    "GGNOperator",
    "HessianOperator",
    "MODES",
    # parameters as vectors
    "flatten_params",
    "unflatten_params",
    # warnings and errors
    "AttentionBackendWarning",
    "ModeFallbackWarning",
    "NondeterministicLossError",
]
