"""Run a test function on several CPU processes joined by a gloo process group on localhost.

``run_on_ranks(worker, world_size, *args)`` starts ``world_size`` fresh interpreters (the
``spawn`` start method: no state is inherited from the pytest process), initialises
``torch.distributed`` with the gloo backend on 127.0.0.1 in each, calls
``worker(rank, world_size, *args)`` and returns the list of the workers' return values, in rank
order. Every collective has a timeout, and the whole run has a deadline after which all ranks
are killed, so a hung rank fails the test instead of hanging the suite. A worker that raises
fails the test with that rank's traceback.
"""

from __future__ import annotations

import datetime
import os
import pickle
import socket
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

COLLECTIVE_TIMEOUT_S = 30.0
DEADLINE_S = 120.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _entry(
    rank: int,
    world_size: int,
    port: int,
    folder: str,
    worker: Callable[..., Any],
    args: tuple,
    collective_timeout: float,
    backend: str,
) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    outcome: tuple[str, Any]
    try:
        dist.init_process_group(
            backend,
            init_method=f"tcp://127.0.0.1:{port}",
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(seconds=collective_timeout),
        )
        try:
            outcome = ("ok", worker(rank, world_size, *args))
        finally:
            dist.destroy_process_group()
    except BaseException:  # reported to the parent, which fails the test
        outcome = ("error", traceback.format_exc())
    with open(Path(folder) / f"rank{rank}.pkl", "wb") as handle:
        pickle.dump(outcome, handle)
    # Skip the interpreter's teardown: gloo's background threads can abort the process there
    # ("terminate called without an active exception") after everything was recorded.
    os._exit(0)


def run_on_ranks(
    worker: Callable[..., Any],
    world_size: int,
    *args: Any,
    collective_timeout: float = COLLECTIVE_TIMEOUT_S,
    deadline: float = DEADLINE_S,
    backend: str = "gloo",
) -> list[Any]:
    """Run ``worker(rank, world_size, *args)`` on ``world_size`` gloo ranks; return the results.

    ``backend="nccl"`` runs on NCCL instead (one GPU per rank; the worker picks its device).

    ``worker`` must be a module-level function of an importable module (it is pickled by
    name) and its return value picklable (move tensors to the CPU first).
    """
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as folder:
        context = mp.start_processes(
            _entry,
            args=(world_size, free_port(), folder, worker, args, collective_timeout, backend),
            nprocs=world_size,
            join=False,
            start_method="spawn",
        )
        end = time.monotonic() + deadline
        try:
            while not context.join(timeout=max(0.1, min(1.0, end - time.monotonic()))):
                if time.monotonic() > end:
                    message = f"the {world_size} ranks did not finish within {deadline} s"
                    raise TimeoutError(message)
        finally:
            for process in context.processes:
                if process.is_alive():
                    process.kill()
        results = []
        for rank in range(world_size):
            path = Path(folder) / f"rank{rank}.pkl"
            if not path.exists():
                message = f"rank {rank} exited without a result"
                raise RuntimeError(message)
            with open(path, "rb") as handle:
                status, value = pickle.load(handle)
            if status == "error":
                message = f"rank {rank} raised:\n{value}"
                raise RuntimeError(message)
            results.append(value)
        return results
