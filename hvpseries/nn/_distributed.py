"""Data parallelism of the curvature operators over a ``torch.distributed`` process group.

Each rank holds a shard of the data. The operators weight every local chunk by its share of the
*global* sample count, so that the sum over ranks of the local results is the product (or
gradient, or loss) of the global mean loss; that sum is one all-reduce. This module holds the
pieces that talk to ``torch.distributed``: resolving which group to use (or none), unwrapping
``DistributedDataParallel``, the agreement check at construction, the sample count and the
all-reduce itself.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from typing import Any

import torch

__all__ = [
    "GroupSpec",
    "agree_at_construction",
    "all_reduce_sum",
    "global_sample_count",
    "ranks_with_flag",
    "resolve_group",
    "unwrap_model",
]

# process_group=: None (detect), False (local) or a ProcessGroup.
GroupSpec = Any

# Floating dtypes by code, for the agreement check (the code travels in a float64 tensor).
_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_OTHER_DTYPE = len(_DTYPES)

# Relative difference of the parameter checksums above which the ranks' parameters certainly
# differ. Identical parameters give identical checksums bit for bit; the margin only guards
# against a device whose float64 sums are not reproducible.
_CHECKSUM_RTOL = 1e-9


def _distributed() -> Any:
    """Return ``torch.distributed`` if this torch build has it, else ``None``."""
    import torch.distributed as dist

    return dist if dist.is_available() else None


def unwrap_model(model: Any) -> tuple[Any, Any]:
    """Return ``(module, group)``: the module a ``DistributedDataParallel`` wraps and its group.

    Calling a ``DistributedDataParallel`` wrapper outside its forward/backward protocol
    broadcasts buffers and arms gradient hooks the curvature products never complete, so the
    operators differentiate the wrapped module and do their own reduction. Any other model is
    returned as it is, with group ``None``.
    """
    dist = _distributed()
    if dist is None:
        return model, None
    from torch.nn.parallel import DistributedDataParallel

    if isinstance(model, DistributedDataParallel):
        return model.module, getattr(model, "process_group", None)
    return model, None


def resolve_group(process_group: GroupSpec, default: Any = None) -> Any:
    """Return the process group an operator reduces over, or ``None`` for a local operator.

    ``False`` is local. ``None`` is ``default`` (the group of a ``DistributedDataParallel``
    model) if given, else the default group if ``torch.distributed`` is initialised, else
    local. A group of one process is local too: there is nothing to reduce.
    """
    if process_group is False:
        return None
    dist = _distributed()
    if process_group is None:
        if default is not None:
            group = default
        elif dist is not None and dist.is_initialized():
            group = dist.group.WORLD
        else:
            return None
    elif dist is not None and isinstance(process_group, dist.ProcessGroup):
        group = process_group
    else:
        message = (
            "process_group must be a torch.distributed.ProcessGroup, None (use the default group "
            "if torch.distributed is initialised) or False (a local operator), got "
            f"{process_group!r}"
        )
        raise TypeError(message)
    if dist.get_world_size(group) == 1:
        return None
    return group


def all_reduce_sum(tensor: torch.Tensor, group: Any) -> torch.Tensor:
    """Sum ``tensor`` over the ranks of ``group`` in place (one collective); return it."""
    import torch.distributed as dist

    dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=group)
    return tensor


def ranks_with_flag(flag: bool, group: Any, device: torch.device) -> list[int]:
    """Return the ranks of ``group`` (numbered in the group) whose ``flag`` is set.

    One all-reduce of one number per rank, on every rank: a check that fails on some ranks
    only makes all of them raise instead of leaving the others waiting in the next collective.
    """
    import torch.distributed as dist

    flags = torch.zeros(dist.get_world_size(group), dtype=torch.float64, device=device)
    flags[dist.get_rank(group)] = float(flag)
    return [rank for rank, value in enumerate(all_reduce_sum(flags, group).tolist()) if value]


def global_sample_count(
    n_local: int, group: Any, device: torch.device, *, failed: bool, splits: bool = False
) -> tuple[int, bool]:
    """Return the number of samples over all ranks of ``group`` and whether any rank splits.

    One small all-reduce. ``failed`` says that this rank could not take its new data: it still
    takes part, and the other ranks raise a ``RuntimeError`` instead of waiting for it in the
    next collective (the failing rank raises its own error after this returns). ``splits``
    says that ``microbatch_size`` splits a batch on this rank; the result says so for any
    rank, so that the BatchNorm check of the products gives the same answer everywhere.
    """
    values = [float(n_local), float(failed), float(splits)]
    numbers = torch.tensor(values, dtype=torch.float64, device=device)
    total, failures, splitting = (int(value) for value in all_reduce_sum(numbers, group).tolist())
    if failed:
        return 0, False
    if failures:
        message = (
            f"{failures} other rank(s) of the process group could not take their new data (see "
            "the error raised there); every rank stops here instead of waiting in a collective"
        )
        raise RuntimeError(message)
    return _checked_total(total), splitting > 0


def _checked_total(total: int) -> int:
    if total == 0:
        message = (
            "the data is empty on every rank (0 samples in all); give at least one rank a "
            "non-empty shard"
        )
        raise ValueError(message)
    return total


def _describe_dtype(code: float) -> str:
    index = int(code)
    return str(_DTYPES[index]).replace("torch.", "") if index < len(_DTYPES) else "another dtype"


def agree_at_construction(
    group: Any,
    params: Sequence[torch.Tensor],
    n_local: int,
    local_error: BaseException | None,
    *,
    splits: bool = False,
) -> tuple[int, bool]:
    """Check that every rank built a compatible operator; return the global sample count.

    Also return whether ``microbatch_size`` splits a batch on any rank (``splits`` is this
    rank's answer). One all-gather of a few numbers per rank: whether the local construction
    succeeded, the number of parameters (elements and tensors), their dtype and shapes, a
    checksum of their values, the local sample count and ``splits``. Every rank takes part
    even when its own construction failed (``local_error``), so that all of them raise
    instead of the others blocking in the next collective. A rank whose construction failed
    re-raises its own error; the others raise a ``RuntimeError`` naming it. Mismatched
    parameters raise a ``ValueError`` on every rank, naming the ranks that differ from rank 0.
    """
    import torch.distributed as dist

    device = params[0].device
    if local_error is None:
        shapes = repr([tuple(p.shape) for p in params]).encode()
        dtype = params[0].dtype
        with torch.no_grad():
            values = torch.stack([p.detach().double().sum() for p in params]).sum()
            sizes = torch.stack([p.detach().double().abs().sum() for p in params]).sum()
        code = _DTYPES.index(dtype) if dtype in _DTYPES else _OTHER_DTYPE
        numbers = [1.0, sum(p.numel() for p in params), len(params), code, zlib.crc32(shapes)]
        header = torch.tensor([*numbers, n_local], dtype=torch.float64, device=device)
        flag = torch.tensor([float(splits)], dtype=torch.float64, device=device)
        row = torch.cat([header, torch.stack([values, sizes]), flag])
    else:
        row = torch.zeros(9, dtype=torch.float64, device=device)
    rows = [torch.empty_like(row) for _ in range(dist.get_world_size(group))]
    dist.all_gather(rows, row, group=group)
    table = [[float(value) for value in r.tolist()] for r in rows]
    # Ranks as numbered in the group (for the default group, the global ranks).
    failed = [rank for rank, r in enumerate(table) if r[0] != 1.0]
    if local_error is not None:
        raise local_error
    if failed:
        message = (
            f"the operator could not be built on rank(s) {failed} of the process group (see "
            "the error raised there); every rank stops here instead of waiting in a collective"
        )
        raise RuntimeError(message)
    reference = table[0]
    mismatched = [rank for rank, r in enumerate(table) if r[1:5] != reference[1:5]]
    if mismatched:
        details = "; ".join(
            f"rank {rank}: {int(r[1])} parameter elements in {int(r[2])} tensors of "
            f"{_describe_dtype(r[3])}"
            + (" (other shapes)" if r[4] != reference[4] and r[1:4] == reference[1:4] else "")
            for rank, r in enumerate(table)
        )
        message = (
            f"the ranks disagree on the parameters of the operator (rank(s) {mismatched} differ "
            f"from rank 0): {details}. Every rank must build the operator for the same model "
            "architecture, dtype and parameter selection (params=)"
        )
        raise ValueError(message)
    scale = max(abs(r[7]) for r in table)
    spread = max(abs(r[6] - reference[6]) for r in table)
    # Non-finite parameters are left to the products to report (the checksum says nothing).
    if math.isfinite(scale) and spread > _CHECKSUM_RTOL * scale:
        differing = [rank for rank, r in enumerate(table) if r[6] != reference[6]]
        message = (
            f"the parameter values differ between ranks (rank(s) {differing} differ from rank "
            "0), so the ranks would compute curvature at different points; start every rank "
            "from the same parameters: seed the initialisation identically, broadcast them from "
            "rank 0 (torch.distributed.broadcast) or wrap the model in DistributedDataParallel, "
            "which broadcasts them at construction"
        )
        raise ValueError(message)
    return _checked_total(int(sum(r[5] for r in table))), any(r[8] != 0.0 for r in table)
