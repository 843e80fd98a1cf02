"""Twice-differentiable attention for the curvature passes.

PyTorch's fused scaled-dot-product attention kernels (flash, memory-efficient, the CPU flash
kernel ``nn.MultiheadAttention`` and ``nn.TransformerEncoder`` call) have first derivatives
only: double backward and forward-mode AD raise. The math backend computes the same function
from differentiable primitives. A curvature operator starts on PyTorch's default kernels and,
the first time a curvature pass fails inside one of those kernels, runs its curvature passes
under the math backend from then on (and says so once). The loss and gradient it reports are
still computed by the model as it runs, on the default kernels.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["ATTENTION_BACKENDS", "attention_kernels", "is_attention_failure"]

ATTENTION_BACKENDS = ("default", "math")

# Names of the fused kernels in the errors PyTorch raises when asked for their derivatives.
_FUSED_KERNELS = ("scaled_dot_product", "flash_attention", "efficient_attention", "_fused_sdp")


def is_attention_failure(error: BaseException) -> bool:
    """Whether ``error`` is a missing derivative of a fused attention kernel."""
    text = str(error)
    return any(name in text for name in _FUSED_KERNELS)


@contextlib.contextmanager
def attention_kernels(backend: str) -> Iterator[None]:
    """Run the enclosed passes on the ``backend`` attention kernels (``"default"``: as is)."""
    if backend == "default":
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([SDPBackend.MATH]):
        yield
