"""Time data-parallel HVPs and SeriesSFN steps on 1 and 2 CPU ranks (docs/distributed.rst).

Run from the repository root: ``python docs/scripts/distributed_benchmark.py``. Each world size
starts that many fresh processes joined by a gloo process group on 127.0.0.1, one thread each;
every rank holds ``SAMPLES / world_size`` samples of one data set, so the ranks share a fixed
amount of work (strong scaling). It prints, per world size: the time per Hessian-vector
product (median over repeats), the time per ``SeriesSFN.from_model`` step, and the
communication per step (all-reduce calls and bytes, counted by wrapping
``torch.distributed.all_reduce``). With one rank the operator is local (a group of one process
needs no reduction), which is the baseline. The numbers are indicative only: on a machine
with few cores the ranks compete for them, and gloo on localhost is not a network.

Options: ``--samples``, ``--hidden``, ``--steps``, ``--repeats``, ``--ranks 1 2``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class AllReduceCounter:
    """Count the calls of ``torch.distributed.all_reduce`` and the bytes they reduce."""

    def __init__(self) -> None:
        self.calls = 0
        self.nbytes = 0
        self._original = dist.all_reduce

    def __enter__(self) -> AllReduceCounter:
        def counting(tensor, *args, **kwargs):
            self.calls += 1
            self.nbytes += tensor.numel() * tensor.element_size()
            return self._original(tensor, *args, **kwargs)

        dist.all_reduce = counting
        return self

    def __exit__(self, *exc_info) -> None:
        dist.all_reduce = self._original


def build(options: argparse.Namespace, rank: int, world_size: int):
    torch.manual_seed(0)  # the same parameters on every rank
    hidden = options.hidden
    model = torch.nn.Sequential(
        torch.nn.Linear(16, hidden),
        torch.nn.Tanh(),
        torch.nn.Linear(hidden, hidden),
        torch.nn.Tanh(),
        torch.nn.Linear(hidden, 1),
    ).double()
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(options.samples, 16, generator=generator, dtype=torch.float64)
    targets = torch.sin(inputs.sum(dim=1, keepdim=True))
    shard = slice(rank * options.samples // world_size, (rank + 1) * options.samples // world_size)
    return model, (inputs[shard], targets[shard])


def rank_main(rank: int, world_size: int, port: int, folder: str, options) -> None:
    from hvpseries.nn import HessianOperator
    from hvpseries.optim import SeriesSFN

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        loss_fn = torch.nn.MSELoss()
        model, shard = build(options, rank, world_size)
        operator = HessianOperator(model, loss_fn, shard)
        v = torch.randn(
            operator.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(2)
        )
        operator @ v  # builds the cached graph
        timings = []
        for _ in range(options.repeats):
            dist.barrier()
            start = time.perf_counter()
            operator @ v
            timings.append(time.perf_counter() - start)
        hvp = statistics.median(timings)

        model, shard = build(options, rank, world_size)
        optimizer = SeriesSFN.from_model(model, loss_fn, damping=1.0, num_terms=10)
        optimizer.step(data=shard)  # warm-up
        dist.barrier()
        with AllReduceCounter() as counter:
            start = time.perf_counter()
            for _ in range(options.steps):
                optimizer.step(data=shard)
            step = (time.perf_counter() - start) / options.steps
        result = {
            "n": operator.shape[0],
            "hvp_ms": 1e3 * hvp,
            "step_ms": 1e3 * step,
            "hvps_per_step": optimizer.counters["hvp"] / (options.steps + 1),
            "calls_per_step": counter.calls / options.steps,
            "bytes_per_step": counter.nbytes / options.steps,
        }
        (Path(folder) / f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    options = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    rows = []
    for world_size in options.ranks:
        with tempfile.TemporaryDirectory() as folder:
            mp.spawn(rank_main, args=(world_size, free_port(), folder, options), nprocs=world_size)
            results = [
                json.loads((Path(folder) / f"rank{rank}.json").read_text())
                for rank in range(world_size)
            ]
        slowest = {key: max(r[key] for r in results) for key in ("hvp_ms", "step_ms")}
        rows.append((world_size, results[0], slowest))
    n = rows[0][1]["n"]
    print(
        f"MLP 16-{options.hidden}-{options.hidden}-1 ({n} parameters, float64), "
        f"{options.samples} samples split over the ranks; gloo on 127.0.0.1, 1 thread per rank"
    )
    header = (
        f"{'ranks':>5}  {'ms/HVP':>8}  {'ms/SFN step':>11}  {'HVPs/step':>9}  "
        f"{'all-reduces/step':>16}  {'kB all-reduced/step':>19}"
    )
    print(header)
    print("-" * len(header))
    for world_size, first, slowest in rows:
        print(
            f"{world_size:>5}  {slowest['hvp_ms']:>8.3f}  {slowest['step_ms']:>11.2f}  "
            f"{first['hvps_per_step']:>9.1f}  {first['calls_per_step']:>16.1f}  "
            f"{first['bytes_per_step'] / 1e3:>19.1f}"
        )
    print("(times: the slowest rank; one rank is a local operator and communicates nothing)")


if __name__ == "__main__":
    main()
