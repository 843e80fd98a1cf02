"""``hvpseries train`` and ``hvpseries demo``: optimizer comparisons and the guided tour."""

from __future__ import annotations

import argparse
import ast
import contextlib
import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._training import (
    OPTIMIZERS,
    SADDLE_INIT_SCALE,
    MissingDependencyError,
    compare_optimizers,
    load_dataset,
    make_optimizer,
    parse_model_spec,
    plot_record,
    require,
    save_record,
)

__all__ = ["add_demo_parser", "add_train_parser", "run_demo", "run_train"]

# The demo's embedded defaults (about 15 s on 2 CPU cores; see ``hvpseries demo --help``).
DEMO_GRID = 24
DEMO_NEGATIVE_FRACTION = 0.05
DEMO_DAMPING = 1.0
DEMO_RTOL = 1e-6
DEMO_SERIES_MAXITER = 1000
DEMO_EPOCHS = 5
DEMO_OPTIMIZERS = ("series-sfn", "krylov-sfn", "adam")
# KrylovSFN capped at 20 HVPs per step, about half of SeriesSFN's 2 (20 - 1) = 38.
DEMO_OPTIONS = {"krylov-sfn": {"maxiter": 20}}


class InputError(Exception):
    """A problem with the user's input or installation: one line on stderr, exit status 2."""


@contextlib.contextmanager
def limit_threads(count: int | None) -> Iterator[None]:
    """Limit torch's and the BLAS libraries' CPU threads to ``count`` (None: leave them).

    BLAS threads are limited through threadpoolctl when it is installed (scikit-learn brings
    it); on a busy machine an unlimited OpenBLAS can make a small ``eigh`` 20 times slower.
    """
    if count is None:
        yield
        return
    with contextlib.ExitStack() as stack:
        try:
            import torch
        except ImportError:
            pass
        else:
            previous = torch.get_num_threads()
            torch.set_num_threads(count)
            stack.callback(torch.set_num_threads, previous)
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            pass
        else:
            stack.enter_context(threadpool_limits(limits=count))
        yield


# --------------------------------------------------------------------------------------------
# train


def add_train_parser(commands: Any) -> None:
    """Register the ``train`` subcommand on the subparsers object ``commands``."""
    parser = commands.add_parser(
        "train",
        help="train a small network with saddle-free Newton, Adam or SGD and compare them",
        description=(
            "Train a multilayer perceptron on a small dataset with one or several optimizers\n"
            "(each from the same initial weights, on the same mini-batches) and report per-epoch\n"
            "training and test loss (and accuracy), optimizer wall time and work counts.\n"
            "Exit status: 0 all runs completed, 1 a run diverged or failed, 2 bad input or a\n"
            "missing dependency."
        ),
        epilog=(
            "examples:\n"
            "  hvpseries train --dataset digits --optimizer series-sfn,adam,sgd --plot curves.png\n"
            "  hvpseries train --dataset saddle --model mlp:16 --optimizer exact-sfn,sgd\n"
            "  hvpseries train --dataset csv:data.csv --optimizer krylov-sfn "
            "--option krylov-sfn.maxiter=20"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--dataset",
        default="digits",
        help="digits or diabetes (bundled with scikit-learn, no download), saddle (synthetic "
        "regression that starts at a saddle point), or csv:PATH (target in the last column) "
        "(default: digits)",
    )
    parser.add_argument(
        "--model",
        default="mlp:50",
        help="mlp:W1[,W2,...][:ACTIVATION] (tanh, relu, gelu, softplus, sigmoid; default tanh) "
        "or linear (default: mlp:50)",
    )
    parser.add_argument(
        "--optimizer",
        default="series-sfn,adam",
        help=f"one or a comma-separated list of {', '.join(OPTIMIZERS)}; sgd has momentum 0.9 "
        "(default: series-sfn,adam)",
    )
    parser.add_argument("--epochs", type=int, default=10, help="passes over the data (10)")
    parser.add_argument("--batch-size", type=int, default=128, help="mini-batch size (128)")
    parser.add_argument(
        "--lr",
        default=None,
        help="learning rate: one value for every optimizer, one value per optimizer "
        "(0.001,0.05), or by name (adam=0.001,sgd=0.05). Defaults: adam 0.001, sgd 0.05; "
        "the SFN optimizers choose their step adaptively unless given one",
    )
    parser.add_argument(
        "--damping", type=float, default=None, help="initial damping of the SFN optimizers"
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="OPTIMIZER.KEY=VALUE",
        help="a constructor option, e.g. series-sfn.num_terms=10 or krylov-sfn.maxiter=20 "
        "(repeatable)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of split, weights, batches (0)")
    parser.add_argument(
        "--init-scale",
        type=float,
        default=None,
        help=f"multiply the initial weights (default 1; {SADDLE_INIT_SCALE:g} for --dataset "
        "saddle, which starts near the saddle point at zero)",
    )
    parser.add_argument(
        "--test-fraction", type=float, default=0.25, help="held-out fraction (0.25)"
    )
    parser.add_argument(
        "--task",
        choices=("auto", "classification", "regression"),
        default="auto",
        help="for csv: datasets: auto (integer targets with <= 100 values are class labels)",
    )
    parser.add_argument(
        "--dtype", choices=("float32", "float64"), default="float32", help="(float32)"
    )
    parser.add_argument("--device", default="cpu", help="torch device (cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", default=None, help="write the run record as JSON to this file")
    parser.add_argument("--plot", default=None, help="save loss curves to this image file")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no table")
    parser.set_defaults(handler=run_train)


def parse_optimizers(text: str) -> list[str]:
    """Split and check ``--optimizer``."""
    names = [name.strip() for name in text.split(",")]
    unknown = [name for name in names if name not in OPTIMIZERS]
    if unknown or not names:
        message = (
            f"unknown optimizer {', '.join(map(repr, unknown))} in --optimizer {text!r}; "
            f"choose from {', '.join(OPTIMIZERS)} (comma-separated to compare)"
        )
        raise InputError(message)
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        message = f"--optimizer lists {', '.join(duplicates)} more than once"
        raise InputError(message)
    return names


def parse_lr(text: str | None, optimizers: Sequence[str]) -> dict[str, float]:
    """Parse ``--lr``: one value, one per optimizer, or ``name=value`` entries."""
    if text is None:
        return {}
    entries = [entry.strip() for entry in text.split(",")]
    try:
        if all("=" in entry for entry in entries):
            pairs = [entry.split("=", 1) for entry in entries]
            rates = {name.strip(): float(value) for name, value in pairs}
            unknown = sorted(set(rates) - set(optimizers))
            if unknown:
                message = (
                    f"--lr names {', '.join(unknown)}, which is not among the optimizers "
                    f"{', '.join(optimizers)}"
                )
                raise InputError(message)
        elif any("=" in entry for entry in entries):
            message = f"--lr {text!r} mixes named (name=value) and plain values"
            raise InputError(message)
        elif len(entries) == 1:
            rates = dict.fromkeys(optimizers, float(entries[0]))
        elif len(entries) == len(optimizers):
            rates = {name: float(value) for name, value in zip(optimizers, entries, strict=True)}
        else:
            message = (
                f"--lr has {len(entries)} values for {len(optimizers)} optimizers; give one "
                "value, one per optimizer, or name=value entries"
            )
            raise InputError(message)
    except ValueError:
        message = f"--lr {text!r} is not a number or a list of numbers"
        raise InputError(message) from None
    bad = {name: rate for name, rate in rates.items() if not (math.isfinite(rate) and rate > 0)}
    if bad:
        message = f"--lr must be positive, got {bad}"
        raise InputError(message)
    return rates


def parse_options(entries: Sequence[str], optimizers: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Parse repeated ``--option OPTIMIZER.KEY=VALUE`` (values as Python literals or strings)."""
    options: dict[str, dict[str, Any]] = {}
    for entry in entries:
        target, equals, text = entry.partition("=")
        name, dot, key = target.strip().rpartition(".")
        if not (equals and dot and name and key):
            message = f"--option {entry!r} is not of the form OPTIMIZER.KEY=VALUE"
            raise InputError(message)
        if name not in optimizers:
            message = (
                f"--option {entry!r} names {name!r}, which is not among the optimizers "
                f"{', '.join(optimizers)}"
            )
            raise InputError(message)
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            value = text.strip()  # a bare word such as lanczos or wynn
        options.setdefault(name, {})[key.strip()] = value
    return options


def _check_arguments(arguments: argparse.Namespace) -> None:
    for name in ("epochs", "batch_size"):
        value = getattr(arguments, name)
        if value < 1:
            message = f"--{name.replace('_', '-')} must be >= 1, got {value}"
            raise InputError(message)
    if arguments.threads is not None and arguments.threads < 1:
        message = f"--threads must be >= 1, got {arguments.threads}"
        raise InputError(message)
    if not 0.0 < arguments.test_fraction < 1.0:
        message = f"--test-fraction must be in (0, 1), got {arguments.test_fraction}"
        raise InputError(message)
    if arguments.init_scale is not None and not (
        math.isfinite(arguments.init_scale) and arguments.init_scale > 0
    ):
        message = f"--init-scale must be positive, got {arguments.init_scale}"
        raise InputError(message)
    if arguments.damping is not None and not (
        math.isfinite(arguments.damping) and arguments.damping >= 0
    ):
        message = f"--damping must be finite and >= 0, got {arguments.damping}"
        raise InputError(message)
    for flag in ("out", "plot"):
        path = getattr(arguments, flag)
        if path is not None:
            _check_output_path(flag, path)
    if arguments.plot is not None:
        _require_cli("matplotlib", "plot", "--plot")
        _check_plot_format(arguments.plot)


def _check_output_path(flag: str, path: str) -> None:
    """Refuse, before any training, an output file that could not be written at the end."""
    target = Path(path)
    folder = target.resolve().parent
    if not folder.is_dir():
        message = f"--{flag} {path!r}: the folder {str(target.parent)!r} does not exist"
    elif target.is_dir():
        message = f"--{flag} {path!r} is a folder; give the name of a file to write"
    elif not os.access(target if target.exists() else folder, os.W_OK):
        message = f"--{flag} {path!r}: no permission to write it"
    else:
        return
    raise InputError(message)


def _check_plot_format(path: str) -> None:
    """Refuse, before any training, a ``--plot`` file whose extension matplotlib cannot write."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # the canvas of plot_record

    formats = FigureCanvasAgg.get_supported_filetypes()
    suffix = Path(path).suffix.lower()
    if suffix[1:] not in formats:
        found = f"has the extension {suffix!r}" if suffix else "has no extension"
        allowed = ", ".join(f".{name}" for name in sorted(formats))
        message = f"--plot {path!r} {found}, which matplotlib cannot write; use one of {allowed}"
        raise InputError(message)


def _require_cli(module: str, extra: str, purpose: str) -> Any:
    try:
        return require(module, extra, purpose)
    except MissingDependencyError as error:
        raise InputError(str(error)) from None


def run_train(arguments: argparse.Namespace) -> int:
    """Run ``hvpseries train``; return the exit status."""
    try:
        _check_arguments(arguments)
        optimizers = parse_optimizers(arguments.optimizer)
        rates = parse_lr(arguments.lr, optimizers)
        options = parse_options(arguments.option, optimizers)
        model_spec = parse_model_spec(arguments.model)
        torch = _require_cli("torch", "torch", "hvpseries train")
        dataset = load_dataset(
            arguments.dataset,
            seed=arguments.seed,
            test_fraction=arguments.test_fraction,
            task=arguments.task,
        )
        device = _device(torch, arguments.device)
        init_scale = arguments.init_scale
        if init_scale is None:
            init_scale = SADDLE_INIT_SCALE if arguments.dataset == "saddle" else 1.0
        with limit_threads(arguments.threads):
            record = compare_optimizers(
                dataset,
                model_spec,
                optimizers,
                epochs=arguments.epochs,
                batch_size=arguments.batch_size,
                seed=arguments.seed,
                lr=rates,
                damping=arguments.damping,
                options=options,
                init_scale=init_scale,
                dtype=getattr(torch, arguments.dtype),
                device=device,
                progress=False if arguments.quiet else None,
                on_error="record",
            )
    except (InputError, ValueError, TypeError, MissingDependencyError) as error:
        print(f"hvpseries train: error: {error}", file=sys.stderr)
        return 2
    record["arguments"] = {
        key: value for key, value in vars(arguments).items() if key not in ("handler", "command")
    }
    if not arguments.quiet:
        print(_describe(record))
        print(format_table(record))
    status = 0
    for run in record["runs"]:
        if run["status"] != "completed":
            print(
                f"hvpseries train: {run['optimizer']} {run['status']}: {run['message']}",
                file=sys.stderr,
            )
            status = 1
    try:
        if arguments.out is not None:
            save_record(record, arguments.out)
            if not arguments.quiet:
                print(f"run record: {arguments.out}")
        if arguments.plot is not None:
            plot_record(record, arguments.plot)
            if not arguments.quiet:
                print(f"plot: {arguments.plot}")
    except OSError as error:
        print(f"hvpseries train: error: cannot write the output: {error}", file=sys.stderr)
        return 2
    return status


def _device(torch: Any, name: str) -> Any:
    try:
        device = torch.device(name)
    except RuntimeError as error:
        message = f"--device {name!r} is not a torch device: {error}"
        raise InputError(message) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        message = f"--device {name}: CUDA is not available to torch on this machine"
        raise InputError(message)
    return device


def _describe(record: dict[str, Any]) -> str:
    data, model, config = record["dataset"], record["model"], record["config"]
    task = data["task"] + (f", {data['n_classes']} classes" if data["n_classes"] else "")
    return (
        f"dataset  {data['name']}: {data['n_train']} train / {data['n_test']} test samples, "
        f"{data['n_features']} features ({task})\n"
        f"model    {model['spec']} ({model['n_parameters']} parameters, {config['dtype']}), "
        f"{config['epochs']} epochs of batch {config['batch_size']}, seed {config['seed']}"
    )


def format_table(record: dict[str, Any]) -> str:
    """Format the final epoch of each run as a text table."""
    classification = record["dataset"]["task"] == "classification"
    header = f"{'optimizer':<12}{'train loss':>12}{'test loss':>12}"
    if classification:
        header += f"{'test acc.':>11}"
    header += f"{'time (s)':>10}{'gradients':>11}{'HVPs':>9}  status"
    lines = [header, "-" * len(header)]
    for run in record["runs"]:
        history = run.get("history")
        if not history:
            lines.append(f"{run['optimizer']:<12}{'':>12}{'':>12}  {run['status']}")
            continue
        last = -1
        row = (
            f"{run['optimizer']:<12}{_number(history['train_loss'][last]):>12}"
            f"{_number(history['test_loss'][last]):>12}"
        )
        if classification:
            accuracy = history["test_accuracy"][last]
            row += f"{'n/a' if accuracy is None else f'{accuracy:.1%}':>11}"
        row += (
            f"{history['wall_time'][last]:>10.2f}{history['gradient'][last]:>11d}"
            f"{history['hvp'][last]:>9d}  {run['status']}"
        )
        lines.append(row)
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "nan" if value is None else f"{value:.4g}"


# --------------------------------------------------------------------------------------------
# demo


def add_demo_parser(commands: Any) -> None:
    """Register the ``demo`` subcommand on the subparsers object ``commands``."""
    parser = commands.add_parser(
        "demo",
        help="a guided tour: |A|^-1 b on a Helmholtz problem, then SFN versus Adam on digits",
        description=(
            "Part 1 computes (|A| + I)^-1 b for a 2D Helmholtz operator (a shifted 5-point "
            "Laplacian with 5% negative eigenvalues) with the series, the accelerated series "
            "and the auto (Krylov) method, and compares each with a dense eigendecomposition. "
            "Part 2 trains a small network on scikit-learn's digits with SeriesSFN, KrylovSFN "
            "and Adam and saves the curves. About 20 s on 2 CPU cores. A part whose components "
            "are missing is skipped with a message; exit status 1 if a part was skipped."
        ),
    )
    parser.add_argument(
        "--out-dir",
        default=".",
        help="folder for demo_training.png and demo_training.json (default: current folder)",
    )
    parser.add_argument(
        "--grid", type=int, default=DEMO_GRID, help=f"Helmholtz grid size m, n = m^2 ({DEMO_GRID})"
    )
    parser.add_argument(
        "--epochs", type=int, default=DEMO_EPOCHS, help=f"training epochs ({DEMO_EPOCHS})"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed (0)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=run_demo)


def run_demo(arguments: argparse.Namespace) -> int:
    """Run ``hvpseries demo``; return the exit status."""
    out_dir = Path(arguments.out_dir)
    problems = []
    if arguments.grid < 4:
        problems.append(f"--grid must be >= 4, got {arguments.grid}")
    if arguments.epochs < 1:
        problems.append(f"--epochs must be >= 1, got {arguments.epochs}")
    if arguments.threads is not None and arguments.threads < 1:
        problems.append(f"--threads must be >= 1, got {arguments.threads}")
    if not out_dir.is_dir():
        problems.append(f"--out-dir {str(out_dir)!r} is not an existing folder")
    if problems:
        print(f"hvpseries demo: error: {'; '.join(problems)}", file=sys.stderr)
        return 2
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
    print(
        f"{part}: {', '.join(optimizers)} on {dataset.name} ({dataset.summary()['n_train']} "
        f"training samples), {model}, {arguments.epochs} epochs of batch 128, from the same "
        "initial weights.\nSeriesSFN: 20 series terms (38 HVPs) per step; KrylovSFN: Lanczos "
        "capped at 20 HVPs per step; Adam: lr 0.001."
    )
    options = {name: DEMO_OPTIONS[name] for name in optimizers if name in DEMO_OPTIONS}
    record = compare_optimizers(
        dataset,
        model,
        optimizers,
        epochs=arguments.epochs,
        seed=arguments.seed,
        options=options,
        init_scale=SADDLE_INIT_SCALE if dataset.name == "saddle" else 1.0,
        progress=False if arguments.quiet else None,
        on_error="record",
    )
    print(format_table(record))
    for run in record["runs"]:
        if run["status"] != "completed":
            print(f"{run['optimizer']} {run['status']}: {run['message']}")
            complete = False
    save_record(record, out_dir / "demo_training.json")
    print(f"run record: {out_dir / 'demo_training.json'}")
    try:
        plot_record(record, out_dir / "demo_training.png")
    except MissingDependencyError as error:
        print(f"plot skipped: {error}")
        return False
    print(f"plot: {out_dir / 'demo_training.png'}")
    return complete
