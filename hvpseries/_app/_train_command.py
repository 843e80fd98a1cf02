"""``hvpseries train``: optimizer comparisons on small problems."""

from __future__ import annotations

import argparse
import ast
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._budget import DEFAULT_TIME_POINTS, MAX_TIME_POINTS
from ._datasets import SADDLE_INIT_SCALE, load_dataset
from ._dependencies import MissingDependencyError, require
from ._loop import compare_optimizers
from ._models import parse_model_spec
from ._optimizers import OPTIMIZERS
from ._records import plot_record, save_record
from ._report import describe_schedule, format_table, summarize
from ._subcommand import InputError, Subcommand, report_error
from ._threads import limit_threads

__all__ = ["TRAIN", "run_train"]


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``hvpseries train`` to its ``parser``."""
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
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="passes over the data (default 10; with --seconds an upper bound, default none)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        metavar="S",
        help="train each optimizer for S seconds of its own optimizer time (evaluation "
        "excluded), through as many epochs as that takes, and compare at equal time",
    )
    parser.add_argument(
        "--time-points",
        type=int,
        default=None,
        metavar="N",
        help="with --seconds: evaluate the full-data losses after the first step that reaches "
        f"each of the times S/N, 2S/N, ..., S (default {DEFAULT_TIME_POINTS})",
    )
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
        text = text.strip()
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            # inf and nan as Python spells them for float(), else a bare word (lanczos, wynn)
            value = float(text) if text.lower().lstrip("+-") in _FLOAT_WORDS else text
        options.setdefault(name, {})[key.strip()] = value
    return options


_FLOAT_WORDS = ("inf", "infinity", "nan")


def _check_arguments(arguments: argparse.Namespace) -> None:
    for name in ("epochs", "batch_size"):
        value = getattr(arguments, name)
        if value is not None and value < 1:
            message = f"--{name.replace('_', '-')} must be >= 1, got {value}"
            raise InputError(message)
    _check_budget(arguments.seconds, arguments.time_points)
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


def _check_budget(seconds: float | None, time_points: int | None) -> None:
    """Check ``--seconds`` and ``--time-points``."""
    if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
        message = f"--seconds must be finite and > 0, got {seconds}"
        raise InputError(message)
    if time_points is None:
        return
    if seconds is None:
        message = "--time-points needs --seconds: the time marks divide the time budget"
        raise InputError(message)
    if not 1 <= time_points <= MAX_TIME_POINTS:
        message = f"--time-points must be from 1 to {MAX_TIME_POINTS}, got {time_points}"
        raise InputError(message)


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
                seconds=arguments.seconds,
                time_points=arguments.time_points,
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
        return report_error("train", error)
    record["arguments"] = {
        key: value for key, value in vars(arguments).items() if key not in ("handler", "command")
    }
    if not arguments.quiet:
        print(_describe(record))
        print(format_table(record))
        print(summarize(record))
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
        return report_error("train", f"cannot write the output: {error}")
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
        f"{describe_schedule(config)}, seed {config['seed']}"
    )


TRAIN = Subcommand(
    "train",
    help="train a small network with saddle-free Newton, Adam or SGD and compare them",
    description=(
        "Train a multilayer perceptron on a small dataset with one or several optimizers\n"
        "(each from the same initial weights, on the same mini-batches) and report per-epoch\n"
        "training and test loss (and accuracy), optimizer wall time and work counts; with\n"
        "--seconds, train each optimizer for the same optimizer time and compare the losses\n"
        "at the same time marks.\n"
        "Exit status: 0 all runs completed, 1 a run diverged or failed, 2 bad input or a\n"
        "missing dependency."
    ),
    epilog=(
        "examples:\n"
        "  hvpseries train --dataset digits --optimizer series-sfn,adam,sgd --plot curves.png\n"
        "  hvpseries train --dataset saddle --model mlp:16 --optimizer exact-sfn,sgd\n"
        "  hvpseries train --dataset digits --optimizer series-sfn,adam --seconds 5\n"
        "  hvpseries train --dataset csv:data.csv --optimizer krylov-sfn "
        "--option krylov-sfn.maxiter=20"
    ),
    formatter_class=argparse.RawDescriptionHelpFormatter,
    add_arguments=_add_arguments,
    run=run_train,
)
