"""The generalised Gauss-Newton matrix of a neural-network loss as a linear operator."""

from __future__ import annotations

from typing import Any

import torch

from ._base import CurvatureOperator
from ._data import Chunk
from ._data import weighted as _weighted
from ._state import cuts_second_derivatives

__all__ = ["GGNOperator"]


class GGNOperator(CurvatureOperator):
    r"""The generalised Gauss-Newton matrix :math:`J^T H_L J` of a model's mean loss.

    Same interface as :class:`HessianOperator` (flat parameter vectors, ``params``,
    ``microbatch_size``, ``check_deterministic``, ``process_group``, :meth:`gradient`,
    :meth:`update`, :meth:`release`), tagged positive semi-definite.

    Parameters
    ----------
    model : torch.nn.Module
        The network, called as ``model(inputs)``; it must return one tensor.
    loss_fn : callable
        ``loss_fn(outputs, targets)``, the mean loss over the batch as a scalar tensor. It
        must be convex in ``outputs`` for the matrix to be positive semi-definite (mean
        squared error, cross-entropy, negative log-likelihoods of exponential families).
    data : (Tensor, Tensor) or iterable of (Tensor, Tensor)
        One batch or several (see :class:`HessianOperator`).
    params : iterable of str or Tensor, optional
        The parameters (default: all trainable ones).
    microbatch_size : int, optional
        Evaluate batches in pieces of at most this many samples, without caching.
    check_deterministic : bool, optional
        Raise if two evaluations of the loss at the same parameters differ.
    block_strategy : {"auto", "batched", "loop"}, optional
        How blocks are applied (see :class:`HessianOperator`); pin one for bit-reproducible
        runs. Default ``"auto"``.
    process_group : torch.distributed.ProcessGroup, None or False, optional
        Data parallelism, with the choices and the default (``None``) of
        :class:`HessianOperator`: each rank passes its own shard of the data, and the products
        are those of the mean loss over the samples of all ranks.

    Raises
    ------
    TypeError
        If the model does not return a tensor, or an argument has the wrong type.
    ValueError
        As for :class:`HessianOperator`.

    Notes
    -----
    With :math:`J_j` the Jacobian of the outputs of batch :math:`j` with respect to the
    parameters and :math:`H_j` the Hessian of :math:`(n_j / N)\,\ell` with respect to those
    outputs, the operator is :math:`G = \sum_j J_j^T H_j J_j`: the Hessian with the second
    derivatives of the network dropped, which is positive semi-definite whenever the loss is
    convex in the outputs. Any loss is supported: :math:`H_j` is obtained by differentiating
    its gradient with respect to the outputs, so mean squared error (:math:`H = 2 I / (nk)`)
    and cross-entropy (:math:`\operatorname{diag}(p) - p p^T` per sample, over :math:`n`)
    come out exactly without special cases.

    Each product costs about three backward passes through the retained graph of the batch:
    :math:`J v` (as the derivative of :math:`J^T u` with respect to :math:`u`), :math:`H J v`
    and :math:`J^T (H J v)`. The same buffer and train/eval rules as for
    :class:`HessianOperator` apply.

    With a process group, the data parallelism of :class:`HessianOperator` applies
    unchanged: the sum over ranks of :math:`J_j^T H_j J_j` with batch weights :math:`n_j / N`,
    one all-reduce per product, identical on every rank.

    Examples
    --------
    >>> import torch
    >>> from hvpseries.nn import GGNOperator
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    >>> data = (torch.randn(10, 3), torch.randint(0, 2, (10,)))
    >>> G = GGNOperator(model, torch.nn.functional.cross_entropy, data)
    >>> G.psd
    True
    >>> v = torch.randn(G.shape[1])
    >>> bool(v @ (G @ v) >= 0)
    True
    """

    _tagged_psd = True

    def _outputs(self, inputs: torch.Tensor) -> Any:
        outputs = self._model(inputs)
        if not isinstance(outputs, torch.Tensor):
            message = (
                f"GGNOperator needs a model that returns one tensor, got "
                f"{type(outputs).__name__}; wrap the model to return the tensor the loss uses"
            )
            raise TypeError(message)
        return outputs

    def _build_chunk(self, chunk: Chunk) -> tuple:
        outputs = self._outputs(chunk.inputs)
        loss = _weighted(chunk, self._checked_loss(outputs, chunk.targets))
        (output_gradient,) = torch.autograd.grad(loss, outputs, create_graph=True)
        # J^T u is linear in u; differentiating it with respect to u gives J v.
        dummy = torch.zeros_like(outputs, requires_grad=True)
        transposed = torch.autograd.grad(
            outputs,
            self._params,
            grad_outputs=dummy,
            create_graph=True,
            allow_unused=True,
            materialize_grads=True,
        )
        live = [i for i, t in enumerate(transposed) if t.requires_grad]
        if cuts_second_derivatives([output_gradient, *(transposed[i] for i in live)]):
            message = (
                "the model's autograd graph contains a node that cannot be differentiated "
                "again (a custom autograd.Function whose backward is @once_differentiable?); "
                "Gauss-Newton products would silently miss terms"
            )
            raise RuntimeError(message)
        return outputs, output_gradient, dummy, [transposed[i] for i in live], live

    def _apply_chunk(self, state: Any, vectors: list[torch.Tensor], batched: bool) -> list[Any]:
        outputs, output_gradient, dummy, transposed, live = state
        if not live or not output_gradient.requires_grad:
            return self._zeros_like_params(vectors, batched)
        (jacobian_vector,) = torch.autograd.grad(
            transposed,
            dummy,
            grad_outputs=[vectors[i] for i in live],
            retain_graph=True,
            is_grads_batched=batched,
        )
        (curvature,) = torch.autograd.grad(
            output_gradient,
            outputs,
            grad_outputs=jacobian_vector,
            retain_graph=True,
            allow_unused=True,
            is_grads_batched=batched,
        )
        if curvature is None:
            return self._zeros_like_params(vectors, batched)
        return self._parameter_products(outputs, curvature, vectors, batched)

    def _cache_roots(self) -> list[Any]:
        return [(state[0], state[1], state[3]) for state in self._cache.states or []]
