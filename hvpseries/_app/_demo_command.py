"""``hvpseries demo``: the guided tour, |A|^-1 b on a Helmholtz problem, then training."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from ._datasets import SADDLE_INIT_SCALE, load_dataset
from ._dependencies import MissingDependencyError, require
from ._loop import compare_optimizers
from ._optimizers import make_optimizer
from ._records import plot_record, save_record
from ._report import format_table, summarize
from ._subcommand import Subcommand, report_error
from ._threads import limit_threads

__all__ = ["DEMO", "run_demo"]

# The demo's embedded defaults (about 15 s on 2 CPU cores; see ``hvpseries demo --help``).
DEMO_GRID = 24
DEMO_NEGATIVE_FRACTION = 0.05
DEMO_DAMPING = 1.0
DEMO_RTOL = 1e-6
DEMO_SERIES_MAXITER = 1000
# Optimizer time per optimizer: on one CPU thread SeriesSFN completes about 18 epochs of
# digits in it, Adam about 500.
DEMO_SECONDS = 3.0
DEMO_TIME_POINTS = 20
DEMO_OPTIMIZERS = ("series-sfn", "krylov-sfn", "lazy-sfn", "adam")
# KrylovSFN capped at 20 HVPs per step, about half of SeriesSFN's 2 (20 - 1) = 38.
DEMO_OPTIONS = {"krylov-sfn": {"maxiter": 20}}


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``hvpseries demo`` to its ``parser``."""
    parser.add_argument(
        "--out-dir",
        default=".",
        help="folder for demo_training.png and demo_training.json (default: current folder)",
    )
    parser.add_argument(
        "--grid", type=int, default=DEMO_GRID, help=f"Helmholtz grid size m, n = m^2 ({DEMO_GRID})"
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=DEMO_SECONDS,
        help=f"optimizer time of each optimizer, in seconds ({DEMO_SECONDS:g})",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="at most this many epochs per optimizer (default: no limit)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed (0)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run_demo(arguments: argparse.Namespace) -> int:
    """Run ``hvpseries demo``; return the exit status."""
    out_dir = Path(arguments.out_dir)
    problems = []
    if arguments.grid < 4:
        problems.append(f"--grid must be >= 4, got {arguments.grid}")
    if not (math.isfinite(arguments.seconds) and arguments.seconds > 0):
        problems.append(f"--seconds must be finite and > 0, got {arguments.seconds}")
    if arguments.epochs is not None and arguments.epochs < 1:
        problems.append(f"--epochs must be >= 1, got {arguments.epochs}")
    if arguments.threads is not None and arguments.threads < 1:
        problems.append(f"--threads must be >= 1, got {arguments.threads}")
    if not out_dir.is_dir():
        problems.append(f"--out-dir {str(out_dir)!r} is not an existing folder")
    if problems:
        return report_error("demo", "; ".join(problems))
    with limit_threads(arguments.threads):
        complete = _demo_solve(arguments.grid, arguments.seed)
        print()
        complete = _demo_train(arguments, out_dir) and complete
    return 0 if complete else 1


def _skip(part: str, reason: str) -> bool:
    print(f"{part}: skipped: {reason}")
    return False


def _demo_solve(grid: int, seed: int) -> bool:
    """Part 1: |A|^-1 b on the Helmholtz problem. Return whether it ran completely."""
    part = "Part 1 (|A|^-1 b)"
    try:  # a broken install loses Part 1 only, not the whole demo
        from .._front_end._functions import abs_inv as front_end_abs_inv
        from .._operators._convert import aslinearoperator
        from ..series import abs_inv as series_abs_inv
        from ._solve_command import helmholtz2d
    except ImportError as error:
        return _skip(part, f"a solver component failed to import: {error}")
    matrix = helmholtz2d(grid, DEMO_NEGATIVE_FRACTION)
    n = matrix.shape[0]
    rhs = np.random.default_rng(seed).standard_normal(n)
    start = time.perf_counter()
    eigenvalues, vectors = np.linalg.eigh(matrix.toarray())
    reference = vectors @ ((vectors.T @ rhs) / (np.abs(eigenvalues) + DEMO_DAMPING))
    dense_time = time.perf_counter() - start
    negative = int(np.sum(eigenvalues < 0))
    smallest = float(np.min(np.abs(eigenvalues)))
    largest = float(np.max(np.abs(eigenvalues)))
    print(
        f"{part}: x = (|A| + {DEMO_DAMPING:g} I)^-1 b for a 2D Helmholtz operator A (shifted "
        f"5-point Laplacian, {grid}x{grid} grid, n = {n}),\n"
        f"{negative} negative eigenvalues, |lambda| in [{smallest:.3g}, {largest:.3g}] "
        f"(kappa(A) = {largest / smallest:.0f}); error relative to a dense eigh "
        f"({dense_time:.2f} s)."
    )
    operator = aslinearoperator(matrix, symmetric=True)
    cases = [
        (
            "series, 20 terms (paper)",
            lambda: series_abs_inv(
                operator, rhs, damping=DEMO_DAMPING, num_terms=20, acceleration=None
            ),
        ),
        (
            "series + Wynn, 20 terms",
            lambda: series_abs_inv(operator, rhs, damping=DEMO_DAMPING, num_terms=20),
        ),
        (
            f"series + Wynn, rtol {DEMO_RTOL:g}",
            lambda: series_abs_inv(
                operator,
                rhs,
                damping=DEMO_DAMPING,
                rtol=DEMO_RTOL,
                maxiter=DEMO_SERIES_MAXITER,
            ),
        ),
        (
            f"auto, rtol {DEMO_RTOL:g}",
            lambda: front_end_abs_inv(operator, rhs, damping=DEMO_DAMPING, rtol=DEMO_RTOL),
        ),
    ]
    header = (
        f"{'method':<28}{'used':<10}{'matvecs':>9}{'error':>11}{'estimate':>11}{'time (s)':>10}"
    )
    print(header + "  status")
    print("-" * (len(header) + 18))
    complete = True
    for label, solve in cases:
        start = time.perf_counter()
        try:
            result = solve()
        except Exception as error:  # report a broken component and go on with the others
            print(f"{label:<28}failed: {type(error).__name__}: {error}")
            complete = False
            continue
        elapsed = time.perf_counter() - start
        x = np.asarray(result.x)
        error = np.linalg.norm(x - reference) / np.linalg.norm(reference)
        estimate = result.error_estimate
        estimate_text = "n/a" if estimate is None else f"{float(np.max(estimate)):.2e}"
        method = str(result.info.get("method", "series"))
        print(
            f"{label:<28}{method:<10}{result.n_matvec:>9d}{error:>11.2e}{estimate_text:>11}"
            f"{elapsed:>10.3f}  {result.status.name.lower()}"
        )
    print(
        "The series needs about kappa^2 log(1/eps) matvecs and Krylov about kappa log(1/eps):\n"
        "on an ill-conditioned indefinite operator the series does not reach the tolerance in "
        f"{DEMO_SERIES_MAXITER} terms;\nKrylov (auto) does with a fraction of the matvecs."
    )
    return complete


def _demo_train(arguments: argparse.Namespace, out_dir: Path) -> bool:
    """Part 2: SeriesSFN, KrylovSFN and Adam on digits. Return whether it ran completely."""
    part = "Part 2 (training)"
    try:
        torch = require("torch", "torch", "the training part of the demo")
    except MissingDependencyError as error:
        return _skip(part, str(error))
    complete = True
    try:
        dataset = load_dataset("digits", seed=arguments.seed)
        model = "mlp:50"
    except MissingDependencyError as error:
        print(f"{part}: {error}\n  -> training on the synthetic saddle problem instead")
        dataset = load_dataset("saddle", seed=arguments.seed)
        model = "mlp:16"
        complete = False
    optimizers = []
    for name in DEMO_OPTIMIZERS:
        try:
            probe = [torch.zeros(1, requires_grad=True)]
            make_optimizer(name, probe, options=DEMO_OPTIONS.get(name))
        except (MissingDependencyError, ImportError) as error:
            print(f"{part}: {name} left out: {error}")
            complete = False
            continue
        optimizers.append(name)
    limit = "" if arguments.epochs is None else f" (at most {arguments.epochs} epochs)"
    print(
        f"{part}: {', '.join(optimizers)} on {dataset.name} ({dataset.summary()['n_train']} "
        f"training samples), {model}, batch 128, from the same initial weights, for "
        f"{arguments.seconds:g} s of optimizer time each{limit}; full-data losses at "
        f"{DEMO_TIME_POINTS} equally spaced times and after every epoch.\nSeriesSFN: 20 series "
        "terms (38 HVPs) per step; KrylovSFN: Lanczos capped at 20 HVPs per step; LazySFN: "
        "20 Ritz pairs rebuilt every 20 steps (20 HVPs), applied to every gradient; Adam: lr 0.001."
    )
    options = {name: DEMO_OPTIONS[name] for name in optimizers if name in DEMO_OPTIONS}
    record = compare_optimizers(
        dataset,
        model,
        optimizers,
        epochs=arguments.epochs,
        seconds=arguments.seconds,
        time_points=DEMO_TIME_POINTS,
        seed=arguments.seed,
        options=options,
        init_scale=SADDLE_INIT_SCALE if dataset.name == "saddle" else 1.0,
        progress=False if arguments.quiet else None,
        on_error="record",
    )
    print(format_table(record))
    print(summarize(record))
    complete = complete and all(run["status"] == "completed" for run in record["runs"])
    save_record(record, out_dir / "demo_training.json")
    print(f"run record: {out_dir / 'demo_training.json'}")
    try:
        plot_record(record, out_dir / "demo_training.png")
    except MissingDependencyError as error:
        print(f"plot skipped: {error}")
        return False
    print(f"plot: {out_dir / 'demo_training.png'}")
    return complete


DEMO = Subcommand(
    "demo",
    help="a guided tour: |A|^-1 b on a Helmholtz problem, then SFN versus Adam on digits",
    description=(
        "Part 1 computes (|A| + I)^-1 b for a 2D Helmholtz operator (a shifted 5-point "
        "Laplacian with 5% negative eigenvalues) with the series, the accelerated series "
        "and the auto (Krylov) method, and compares each with a dense eigendecomposition. "
        "Part 2 trains a small network on scikit-learn's digits with SeriesSFN, KrylovSFN "
        "and Adam for the same optimizer time each, compares them at equal time and at "
        "equal epochs, says in words what the run shows, and saves the curves. About 20 s "
        "on 2 CPU cores. A part whose components are missing is skipped with a message; "
        "exit status 1 if a part was skipped."
    ),
    add_arguments=_add_arguments,
    run=run_demo,
)
