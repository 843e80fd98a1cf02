"""The warnings and errors of :mod:`hvpseries.nn`."""

from __future__ import annotations

__all__ = ["AttentionBackendWarning", "ModeFallbackWarning", "NondeterministicLossError"]


class AttentionBackendWarning(RuntimeWarning):
    """The curvature passes of this operator use PyTorch's math attention backend.

    Issued once per operator, when a pass failed in a fused scaled-dot-product attention
    kernel (which has no second derivatives); ``operator.attention_backend`` is then
    ``"math"``. The products stay exact; they are slower than the fused kernels would be.

    Examples
    --------
    >>> from hvpseries.nn import AttentionBackendWarning
    >>> issubclass(AttentionBackendWarning, RuntimeWarning)
    True
    """


class ModeFallbackWarning(RuntimeWarning):
    """A curvature product mode failed on this model and another mode took over.

    Issued once per operator; the mode in use is then ``operator.mode``.

    Examples
    --------
    >>> from hvpseries.nn import ModeFallbackWarning
    >>> issubclass(ModeFallbackWarning, RuntimeWarning)
    True
    """


class NondeterministicLossError(RuntimeError):
    """Two evaluations of the loss at the same parameters disagreed (``check_deterministic``).

    Usually Dropout or another random layer in train mode: call ``model.eval()`` or fix the
    randomness.

    Examples
    --------
    >>> import torch
    >>> from hvpseries.nn import HessianOperator, NondeterministicLossError
    >>> layers = [torch.nn.Linear(4, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 1)]
    >>> model = torch.nn.Sequential(*layers)
    >>> data = (torch.randn(16, 4), torch.randn(16, 1))
    >>> H = HessianOperator(model, torch.nn.MSELoss(), data, check_deterministic=True)
    >>> try:
    ...     H @ torch.ones(H.shape[0])
    ... except NondeterministicLossError:
    ...     print("caught")
    caught
    """
