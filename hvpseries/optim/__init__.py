"""Saddle-free Newton optimizers with the :class:`torch.optim.Optimizer` interface.

- :class:`SeriesSFN`: the paper's method, the direction from the square-root/inverse series;
- :class:`KrylovSFN`: the same step, the direction from the Krylov front end (fewer HVPs for
  accurate directions);
- :class:`LazySFN`: a low-rank ``|H|`` from a few Lanczos steps, rebuilt every few steps
  and reused in between (about one gradient per step);
- :class:`ExactSFN`: the exact step from a dense Hessian, for small models and as a reference.

All take ``step(closure)`` like :class:`torch.optim.LBFGS` and need PyTorch; built with
``from_model`` they run data-parallel over a ``torch.distributed`` process group.
:class:`LocalClosureWarning` says that a closure step inside such a group is local.
"""

from ._base import LocalClosureWarning
from ._exact_sfn import ExactSFN
from ._krylov_sfn import KrylovSFN
from ._lazy_sfn import LazySFN
from ._series_sfn import SeriesSFN

__all__ = [
    # optimizers
    "ExactSFN",
    "KrylovSFN",
    "LazySFN",
    "SeriesSFN",
    # warnings
    "LocalClosureWarning",
]
