"""Train a small transformer to sort integer sequences: SeriesSFN and KrylovSFN against Adam.

The task is generated on the fly (no download): the input is a sequence of ``LENGTH`` integers
drawn uniformly from ``range(VOCABULARY)``, the target is the same sequence sorted, and the
loss is the token-level cross-entropy. The model is an embedding with learned positions, one
``torch.nn.TransformerEncoderLayer`` (``dropout=0``, ``batch_first=True``) and a linear
readout, about 9,000 parameters.

Every optimizer gets the same wall-clock budget, the same initial weights and the same
sequence of training batches (seeded), on one CPU thread. The clock counts the optimizer's
work only (forward, backward, Hessian-vector products, update); building batches and the
evaluations on a fixed held-out batch are excluded. Adam is run with several learning rates
and all of them are printed; the SFN optimizers use their documented defaults.

Run from the repository root::

    python docs/scripts/transformer_sfn.py [--seconds S] [--seed N]

See ``docs/transformer_sfn.rst`` for the measured tables and their reading.

Notes
-----
PyTorch's fused attention kernels have no second derivatives; the optimizers' Hessian
operator switches its curvature passes to the math attention backend the first time they
fail, and says so with an :class:`hvpseries.nn.AttentionBackendWarning`, which this script
silences after reporting it once.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hvpseries.nn import AttentionBackendWarning
from hvpseries.optim import KrylovSFN, SeriesSFN

VOCABULARY = 10
LENGTH = 8
WIDTH = 32
HEADS = 4
FEEDFORWARD = 64
BATCH_SIZE = 128
HELD_OUT_SIZE = 2048
ADAM_LEARNING_RATES = (1e-3, 3e-3, 1e-2)
# Checkpoints of the timed table, as fractions of the budget.
TIME_FRACTIONS = (0.05, 0.1, 0.25, 0.5, 1.0)
# Steps of the per-step table (those a run reaches).
STEP_MARKS = (1, 10, 30, 100, 300, 1000, 3000, 10000)


class SortingTransformer(nn.Module):
    """Embedding with learned positions, one encoder layer, a linear readout per position.

    Parameters
    ----------
    vocabulary : int
        Number of distinct tokens.
    length : int
        Sequence length.
    width, heads, feedforward : int
        ``d_model``, ``nhead`` and ``dim_feedforward`` of the encoder layer.
    """

    def __init__(
        self, vocabulary: int, length: int, width: int, heads: int, feedforward: int
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocabulary, width)
        self.position = nn.Parameter(0.1 * torch.randn(length, width))
        self.encoder = nn.TransformerEncoderLayer(
            width, heads, dim_feedforward=feedforward, dropout=0.0, batch_first=True
        )
        self.readout = nn.Linear(width, vocabulary)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Return logits of shape ``(batch, length, vocabulary)`` for integer ``tokens``."""
        return self.readout(self.encoder(self.embedding(tokens) + self.position))


def token_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over all tokens of the batch."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def sorting_batch(size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``size`` random sequences and their sorted versions."""
    inputs = torch.randint(0, VOCABULARY, (size, LENGTH), generator=generator)
    return inputs, torch.sort(inputs, dim=1).values


def batches(seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield the same endless sequence of training batches for every run with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        yield sorting_batch(BATCH_SIZE, generator)


@dataclass
class Record:
    """One evaluation: the optimizer's time and steps so far, and the held-out metrics."""

    seconds: float
    steps: int
    train_loss: float  # mean training-batch loss over the steps since the previous record
    held_out_loss: float
    held_out_accuracy: float  # fraction of tokens predicted correctly
    sequence_accuracy: float  # fraction of sequences sorted entirely correctly


@dataclass
class Run:
    """The history of one optimizer."""

    name: str
    records: list[Record] = field(default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)


@torch.no_grad()
def evaluate(
    model: nn.Module, held_out: tuple[torch.Tensor, torch.Tensor]
) -> tuple[float, float, float]:
    """Return the held-out loss, token accuracy and whole-sequence accuracy."""
    inputs, targets = held_out
    logits = model(inputs)
    correct = logits.argmax(dim=-1) == targets
    return (
        float(token_cross_entropy(logits, targets)),
        float(correct.float().mean()),
        float(correct.all(dim=1).float().mean()),
    )


def train(
    name: str,
    model: nn.Module,
    take_step: Callable[[tuple[torch.Tensor, torch.Tensor]], float],
    *,
    seconds: float,
    seed: int,
    held_out: tuple[torch.Tensor, torch.Tensor],
) -> Run:
    """Step on the seeded batches until ``seconds`` of optimizer time are spent.

    The model is evaluated at the first step of ``STEP_MARKS`` and whenever the clock passes a
    fraction of ``TIME_FRACTIONS``, and after the last step.
    """
    run = Run(name)
    run.records.append(Record(0.0, 0, math.nan, *evaluate(model, held_out)))
    checkpoints = [fraction * seconds for fraction in TIME_FRACTIONS]
    elapsed, pending = 0.0, []
    for steps, batch in enumerate(batches(seed), start=1):
        start = time.perf_counter()
        pending.append(take_step(batch))
        elapsed += time.perf_counter() - start
        due = steps in STEP_MARKS or (checkpoints and elapsed >= checkpoints[0])
        if due or elapsed >= seconds:
            while checkpoints and elapsed >= checkpoints[0]:
                checkpoints.pop(0)
            train_loss = sum(pending) / len(pending)
            run.records.append(Record(elapsed, steps, train_loss, *evaluate(model, held_out)))
            pending = []
        if elapsed >= seconds:
            return run
    raise AssertionError  # batches() is endless


def adam_stepper(
    model: nn.Module, lr: float
) -> Callable[[tuple[torch.Tensor, torch.Tensor]], float]:
    """Return a function taking one Adam step on a batch and returning the batch loss."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def take_step(batch: tuple[torch.Tensor, torch.Tensor]) -> float:
        inputs, targets = batch
        optimizer.zero_grad(set_to_none=True)
        loss = token_cross_entropy(model(inputs), targets)
        loss.backward()
        optimizer.step()
        return loss.item()

    return take_step


def sfn_stepper(
    optimizer: SeriesSFN | KrylovSFN,
) -> Callable[[tuple[torch.Tensor, torch.Tensor]], float]:
    """Return a function taking one SFN step on a batch and returning the batch loss."""

    def take_step(batch: tuple[torch.Tensor, torch.Tensor]) -> float:
        return float(optimizer.step(data=batch))

    return take_step


def value_at(run: Run, seconds: float) -> Record:
    """Return the evaluation after the step that took the optimizer's clock past ``seconds``."""
    return next((r for r in run.records if r.seconds >= seconds), run.records[-1])


def print_tables(runs: list[Run], seconds: float) -> None:
    """Print held-out loss and token accuracy against time and against steps."""
    width = max(len(run.name) for run in runs) + 2
    times = [fraction * seconds for fraction in TIME_FRACTIONS]
    print("\nheld-out loss / token accuracy after the step that passed each time")
    print("optimizer".ljust(width) + "".join(f"{f'{t:g} s':>12}    " for t in times))
    for run in runs:
        cells = []
        for t in times:
            record = value_at(run, t)
            cells.append(f"{record.held_out_loss:7.3f} {100 * record.held_out_accuracy:5.1f}%  ")
        print(run.name.ljust(width) + "".join(cells))
    marks = [m for m in STEP_MARKS if any(r.steps == m for run in runs for r in run.records)]
    print("\nheld-out loss / token accuracy after a number of steps ('-': not reached)")
    print("optimizer".ljust(width) + "".join(f"{m:>9d} steps " for m in marks))
    for run in runs:
        cells = []
        for m in marks:
            hits = [r for r in run.records if r.steps == m]
            if hits:
                record = hits[0]
                cells.append(
                    f"{record.held_out_loss:7.3f} {100 * record.held_out_accuracy:5.1f}%  "
                )
            else:
                cells.append(" " * 14 + "-  ")
        print(run.name.ljust(width) + "".join(cells))
    print("\nfinal")
    header = "optimizer".ljust(width)
    header += "   steps  s/step  last train loss  held-out loss  token acc  sequence acc"
    print(header)
    for run in runs:
        last = run.records[-1]
        print(
            run.name.ljust(width)
            + f"{last.steps:8d} {last.seconds / last.steps:7.4f} {last.train_loss:16.4f}"
            + f" {last.held_out_loss:14.4f} {100 * last.held_out_accuracy:9.1f}%"
            + f" {100 * last.sequence_accuracy:12.1f}%"
            + "".join(f"  {key}={value:.4g}" for key, value in run.extra.items())
        )


def main(argv: list[str] | None = None) -> list[Run]:
    """Run the comparison and print its tables; return the runs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="budget per optimizer")
    parser.add_argument("--seed", type=int, default=0, help="initial weights and batches")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--dtype", choices=("float32", "float64"), default="float32", help="parameter dtype"
    )
    parser.add_argument(
        "--optimizers",
        default="series-sfn,krylov-sfn,adam",
        help="comma-separated subset of series-sfn, krylov-sfn, adam",
    )
    parser.add_argument(
        "--adam-lr",
        default=",".join(str(lr) for lr in ADAM_LEARNING_RATES),
        help="comma-separated Adam learning rates, each run for the full budget",
    )
    parser.add_argument("--out", type=Path, help="write the runs' histories as JSON here")
    arguments = parser.parse_args(argv)
    chosen = arguments.optimizers.split(",")
    unknown = set(chosen) - {"series-sfn", "krylov-sfn", "adam"}
    if unknown:
        parser.error(f"unknown optimizers {sorted(unknown)}")

    torch.set_num_threads(arguments.threads)
    dtype = getattr(torch, arguments.dtype)
    torch.manual_seed(arguments.seed)
    initial = SortingTransformer(VOCABULARY, LENGTH, WIDTH, HEADS, FEEDFORWARD).to(dtype)
    held_out = sorting_batch(HELD_OUT_SIZE, torch.Generator().manual_seed(10_000 + arguments.seed))
    n_parameters = sum(p.numel() for p in initial.parameters())
    print(
        f"sorting {LENGTH} tokens from a vocabulary of {VOCABULARY}; {n_parameters} parameters, "
        f"{arguments.dtype}, batch {BATCH_SIZE}, {arguments.threads} thread(s), "
        f"{arguments.seconds:g} s per optimizer, seed {arguments.seed}"
    )

    runs = []
    options = {"seconds": arguments.seconds, "seed": arguments.seed, "held_out": held_out}
    for name in chosen:
        if name == "adam":
            for lr in (float(text) for text in arguments.adam_lr.split(",")):
                model = copy.deepcopy(initial)
                runs.append(train(f"Adam lr={lr:g}", model, adam_stepper(model, lr), **options))
                print(f"{runs[-1].name}: {runs[-1].records[-1]}")
            continue
        model = copy.deepcopy(initial)
        cls = SeriesSFN if name == "series-sfn" else KrylovSFN
        optimizer = cls.from_model(model, token_cross_entropy)  # documented defaults
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", AttentionBackendWarning)
            run = train(cls.__name__, model, sfn_stepper(optimizer), **options)
        attention = sum(issubclass(w.category, AttentionBackendWarning) for w in caught)
        for w in caught:
            if not issubclass(w.category, AttentionBackendWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        counters = optimizer.counters
        steps = max(counters["step"] + counters["rejected"] + counters["skipped"], 1)
        run.extra = {
            "hvp/step": counters["hvp"] / steps,
            "rejected": counters["rejected"],
            "skipped": counters["skipped"],
            "damping": optimizer.damping,
            "attention_warnings": attention,
        }
        runs.append(run)
        print(f"{run.name}: {run.records[-1]} {run.extra}")

    print_tables(runs, arguments.seconds)
    if arguments.out is not None:
        settings = {key: str(value) for key, value in vars(arguments).items()}
        content = {"settings": settings, "runs": [asdict(run) for run in runs]}
        arguments.out.write_text(json.dumps(content, indent=1))
    return runs


if __name__ == "__main__":
    main()
