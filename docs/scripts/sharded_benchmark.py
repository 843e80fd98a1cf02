"""Time per CG iteration and per Lanczos step on a row-sharded 2D Laplacian (gloo, CPU).

Usage: ``python docs/scripts/sharded_benchmark.py [--side 316] [--ranks 1 2]``

Each rank holds a band of grid rows of the ``side x side`` 5-point Laplacian (``n = side^2``)
and exchanges one grid row with each neighbour per matvec (one ``all_gather`` of the two
boundary rows). Reports, for every number of ranks, the wall time per CG iteration and per
Lanczos step (``funm_lanczos`` without reorthogonalisation and with full reorthogonalisation)
and the all-reduces per iteration counted by ``DistributedOperator.n_all_reduce``. On a
two-core machine the numbers are indicative only: the ranks share the cores.
"""

from __future__ import annotations

import argparse
import datetime
import os
import socket
import time

import numpy as np


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _laplacian_operator(side: int, rank: int, world: int):
    import torch
    import torch.distributed as dist

    import hvpseries as hs

    cuts = np.linspace(0, side, world + 1).round().astype(int)
    first, last = int(cuts[rank]), int(cuts[rank + 1])
    rows = last - first

    def matvec(x):
        grid = x.reshape(rows, side)
        ends = torch.stack([grid[0], grid[-1]])
        everyone = [torch.empty_like(ends) for _ in range(world)]
        dist.all_gather(everyone, ends)  # the halo: neighbours' boundary grid rows
        above = everyone[rank - 1][1] if rank > 0 else torch.zeros_like(grid[0])
        below = everyone[rank + 1][0] if rank < world - 1 else torch.zeros_like(grid[0])
        y = 4.0 * grid
        y[1:] -= grid[:-1]
        y[:-1] -= grid[1:]
        y[0] -= above
        y[-1] -= below
        y[:, 1:] -= grid[:, :-1]
        y[:, :-1] -= grid[:, 1:]
        return y.reshape(-1)

    operator = hs.DistributedOperator(
        matvec, rows * side, global_size=side * side, symmetric=True, psd=True
    )
    return operator, first * side, rows * side


def _worker(rank: int, world: int, port: int, side: int, queue) -> None:
    import torch
    import torch.distributed as dist

    from hvpseries import krylov

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=120),
    )
    A, offset, size = _laplacian_operator(side, rank, world)
    n = side * side
    b_full = torch.as_tensor(np.random.default_rng(0).standard_normal(n))
    b = b_full[offset : offset + size].clone()
    report = {}
    for name, run in (
        ("cg", lambda: krylov.cg(A, b, rtol=1e-30, maxiter=200)),
        (
            "lanczos (none)",
            lambda: krylov.funm_lanczos(
                A, b, np.sqrt, rtol=1e-30, maxiter=200, reorthogonalize="none"
            ),
        ),
        (
            "lanczos (full)",
            lambda: krylov.funm_lanczos(
                A, b, np.sqrt, rtol=1e-30, maxiter=200, reorthogonalize="full"
            ),
        ),
    ):
        dist.barrier()
        before = A.n_all_reduce
        start = time.perf_counter()
        result = run()
        elapsed = time.perf_counter() - start
        report[name] = (elapsed / result.n_iter, (A.n_all_reduce - before) / result.n_iter)
    dist.destroy_process_group()
    if rank == 0:
        queue.put(report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=316, help="grid side (n = side^2)")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    arguments = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch.multiprocessing as mp

    n = arguments.side**2
    print(f"2D Laplacian, n = {n}, 200 iterations each, gloo on CPU")
    print(f"{'ranks':>5}  {'method':<16} {'ms / iteration':>15} {'all-reduces / it':>17}")
    context = mp.get_context("spawn")
    for world in arguments.ranks:
        queue = context.Queue()
        port = _free_port()
        mp.start_processes(
            _worker,
            args=(world, port, arguments.side, queue),
            nprocs=world,
            start_method="spawn",
        )
        for name, (seconds, reductions) in queue.get().items():
            print(f"{world:>5}  {name:<16} {1e3 * seconds:>15.3f} {reductions:>17.2f}")


if __name__ == "__main__":
    main()
