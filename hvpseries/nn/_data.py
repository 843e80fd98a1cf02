"""Batches of data: validation, sample weights and microbatches."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Chunk", "make_chunks", "weighted"]


@dataclass(frozen=True)
class Chunk:
    """A piece of data evaluated in one forward pass.

    ``weight`` is the chunk's share of all samples, so that the total loss is
    ``sum(chunk.weight * loss_fn(model(chunk.inputs), chunk.targets))``, the mean over all
    samples when ``loss_fn`` averages over its batch.
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    weight: float


def weighted(chunk: Chunk, loss: torch.Tensor) -> torch.Tensor:
    """Return ``chunk.weight * loss``, without a graph node when the weight is 1 (one chunk)."""
    return loss if chunk.weight == 1.0 else chunk.weight * loss


def _is_single_batch(data: Any) -> bool:
    return (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and all(isinstance(item, torch.Tensor) for item in data)
    )


def make_chunks(
    data: Any, microbatch_size: int | None, device: torch.device, *, allow_empty: bool = False
) -> list[Chunk]:
    """Validate ``data`` (one batch or an iterable of batches) and split it into chunks.

    The weights are shares of the samples in ``data``. With ``allow_empty`` (one rank's shard
    of data-parallel data), empty batches and an empty iterable give no chunks instead of an
    error.
    """
    if _is_single_batch(data):
        batches = [tuple(data)]
    elif isinstance(data, torch.Tensor) or not isinstance(data, Iterable):
        message = (
            "data must be one batch (inputs, targets) of tensors or an iterable of such "
            f"batches (a list, a DataLoader), got {type(data).__name__}"
        )
        raise TypeError(message)
    else:
        batches = list(data)
        if not batches and not allow_empty:
            message = "data holds no batches; pass (inputs, targets) or a non-empty iterable"
            raise ValueError(message)
    sizes = []
    for index, batch in enumerate(batches):
        if not _is_single_batch(batch):
            message = (
                f"batch {index} of data must be a pair (inputs, targets) of tensors, got "
                f"{_describe(batch)}"
            )
            raise TypeError(message)
        inputs, targets = batch
        if inputs.ndim == 0 or targets.ndim == 0:
            message = (
                f"batch {index}: inputs and targets need a leading batch dimension, got shapes "
                f"{tuple(inputs.shape)} and {tuple(targets.shape)}"
            )
            raise ValueError(message)
        if inputs.shape[0] != targets.shape[0]:
            message = (
                f"batch {index}: inputs hold {inputs.shape[0]} samples (shape "
                f"{tuple(inputs.shape)}) but targets hold {targets.shape[0]} (shape "
                f"{tuple(targets.shape)}); the leading dimension is the batch and must agree"
            )
            raise ValueError(message)
        if inputs.shape[0] == 0 and not allow_empty:
            message = (
                f"batch {index} is empty (0 samples); only a rank's shard of data-parallel "
                "data may be empty"
            )
            raise ValueError(message)
        for name, tensor in (("inputs", inputs), ("targets", targets)):
            if tensor.device != device:
                message = (
                    f"batch {index}: {name} are on {tensor.device} but the parameters are on "
                    f"{device}; move the data with .to({str(device)!r})"
                )
                raise ValueError(message)
        sizes.append(int(inputs.shape[0]))
    total = sum(sizes)
    chunks = []
    for (inputs, targets), size in zip(batches, sizes, strict=True):
        if size == 0:
            continue
        step = size if microbatch_size is None else microbatch_size
        for start in range(0, size, step):
            piece_inputs = inputs[start : start + step]
            chunks.append(
                Chunk(piece_inputs, targets[start : start + step], piece_inputs.shape[0] / total)
            )
    return chunks


def _describe(batch: Any) -> str:
    if isinstance(batch, (tuple, list)):
        kinds = ", ".join(type(item).__name__ for item in batch)
        return f"a {type(batch).__name__} of {len(batch)} items ({kinds})"
    return type(batch).__name__
