"""ExactSFN: the saddle-free Newton step from a dense Hessian and its eigendecomposition."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from .._core._checks import check_positive_int
from .._core._result import SolveResult, Status
from .._operators._base import LinearOperator
from ._base import SaddleFreeNewton

__all__ = ["ExactSFN"]

# Columns of the Hessian built per batched HVP pass (bounds the memory of vmap).
_COLUMNS_PER_PASS = 128


class ExactSFN(SaddleFreeNewton):
    r"""Saddle-free Newton with the exact ``(|H| + d I)^-1 g`` from a dense eigendecomposition.

    The reference the other optimizers are tested against. Each step builds the Hessian from
    ``n`` Hessian-vector products (batched; :meth:`from_model` pins
    ``block_strategy="batched"`` so that runs and resumed runs are bit-identical), diagonalises
    it with ``torch.linalg.eigh`` and applies ``Q diag(1 / (|lambda| + d)) Q^T``: ``O(n^2)``
    memory and ``O(n^3)`` time.

    Parameters
    ----------
    params : iterable of tensors or one parameter group
        As for :class:`SeriesSFN`, at most ``max_parameters`` scalars in all.
    damping : float, default 1.0
        Initial damping ``d >= 0``. With ``d = 0``, eigenvalues with
        ``|lambda| <= n * eps * max |lambda|`` are treated as zero (pseudo-inverse).
    max_parameters : int, default 4096
        Refuse larger models (the dense Hessian of 4096 parameters takes 128 MiB in float64).
    adaptive, lr, momentum, damping_factor, damping_min, damping_max
        As for :class:`SeriesSFN`.
    reject_increase : bool, default True
        As for :class:`KrylovSFN`: on by default, unlike :class:`SeriesSFN`.

    Raises
    ------
    ValueError
        If the parameters that require gradients have more than ``max_parameters`` entries
        (checked again at each step, as parameters may be unfrozen).

    Examples
    --------
    >>> import torch
    >>> from hvpseries.optim import ExactSFN
    >>> x = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    >>> optimizer = ExactSFN([x], damping=0.0)
    >>> _ = optimizer.step(lambda: (x[0] - 3) ** 2 + 2 * (x[1] + 1) ** 2)
    >>> x.detach()  # one undamped step solves a convex quadratic
    tensor([ 3., -1.], dtype=torch.float64)
    """

    # The dense Hessian comes from blocks; a pinned strategy keeps steps bit-reproducible.
    _curvature_block_strategy = "batched"

    def __init__(
        self,
        params: Iterable[Any],
        *,
        damping: float = 1.0,
        max_parameters: int = 4096,
        adaptive: bool = True,
        lr: float | None = None,
        momentum: float | None = None,
        damping_factor: float = 0.9,
        damping_min: float = 1e-8,
        damping_max: float = 1e4,
        reject_increase: bool = True,
    ) -> None:
        check_positive_int(max_parameters, "max_parameters")
        self._max_parameters = max_parameters  # before the base class checks the parameters
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

    def _check_parameters(self, params: list[torch.Tensor]) -> None:
        super()._check_parameters(params)
        n = sum(p.numel() for p in params)
        if n > self._max_parameters:
            message = (
                f"ExactSFN forms the dense {n}x{n} Hessian, above "
                f"max_parameters={self._max_parameters}; use SeriesSFN or KrylovSFN, or raise "
                "max_parameters if the memory is there"
            )
            raise ValueError(message)

    def _direction(
        self, hessian: LinearOperator, gradient: torch.Tensor, damping: float, state: dict[str, Any]
    ) -> tuple[torch.Tensor, Any]:
        n = gradient.numel()
        eye = torch.eye(n, dtype=gradient.dtype, device=gradient.device)
        columns = [
            hessian.matmat(eye[:, start : start + _COLUMNS_PER_PASS])
            for start in range(0, n, _COLUMNS_PER_PASS)
        ]
        dense = torch.cat(columns, dim=1)
        eigenvalues, eigenvectors = torch.linalg.eigh((dense + dense.T) / 2)
        magnitudes = eigenvalues.abs() + damping
        cutoff = n * torch.finfo(dense.dtype).eps * float(eigenvalues.abs().max())
        inverse = torch.where(magnitudes > cutoff, 1.0 / magnitudes, torch.zeros_like(magnitudes))
        direction = eigenvectors @ (inverse * (eigenvectors.T @ gradient))
        result = SolveResult(
            x=direction,
            status=Status.SUCCESS,
            n_matvec=n,
            n_iter=1,
            info={
                "method": "dense",
                "min_eigenvalue": float(eigenvalues[0]),
                "max_eigenvalue": float(eigenvalues[-1]),
                "n_negative": int((eigenvalues < 0).sum()),
            },
        )
        return direction, result
