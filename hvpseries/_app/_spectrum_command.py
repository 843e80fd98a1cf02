"""``hvpseries spectrum``: extreme eigenvalues, trace, log-determinant and density of a matrix."""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from ._dependencies import MissingDependencyError, require
from ._solve_command import add_built_in_arguments, add_matrix_argument, read_matrix
from ._subcommand import InputError, Subcommand, report_error

__all__ = ["SPECTRUM", "run_spectrum"]


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``hvpseries spectrum`` to its ``parser``."""
    add_matrix_argument(parser, alternative="--dataset for a model's Hessian")
    parser.add_argument(
        "--dataset",
        default=None,
        help="the Hessian of a model's loss on this training set instead of a matrix: digits, "
        "diabetes, saddle or csv:PATH (as hvpseries train; needs torch)",
    )
    parser.add_argument(
        "--model", default="mlp:32", help="with --dataset: the model, as hvpseries train (mlp:32)"
    )
    parser.add_argument(
        "--init-scale",
        type=float,
        default=None,
        help="with --dataset: scale of the initial weights (1, or 1e-3 for saddle)",
    )
    parser.add_argument(
        "--k", type=int, default=6, help="eigenvalues from both ends together (default 6)"
    )
    parser.add_argument(
        "--rtol", type=float, default=1e-8, help="eigenvalue tolerance (default 1e-8)"
    )
    parser.add_argument(
        "--estimate-rtol",
        type=float,
        default=1e-2,
        help="relative standard error of the trace and log|det| (default 1e-2)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the probes (default 0)")
    parser.add_argument(
        "--plot", default=None, help="write the spectral density to this image (.png, .svg)"
    )
    parser.add_argument("--json", action="store_true", help="print the estimates as JSON")
    add_built_in_arguments(parser)


def _estimates(arguments: argparse.Namespace, operator: Any) -> dict[str, Any]:
    import hvpseries as hs

    start = time.perf_counter()
    eigen = hs.eigsh(operator, arguments.k, which="BE", rtol=arguments.rtol, seed=arguments.seed)
    trace = hs.trace(operator, rtol=arguments.estimate_rtol, seed=arguments.seed)
    logdet = hs.logdet(operator, rtol=arguments.estimate_rtol, absolute=True, seed=arguments.seed)
    density = hs.spectral_density(operator, seed=arguments.seed)
    return {
        "eigenvalues": eigen,
        "trace": trace,
        "logdet": logdet,
        "density": density,
        "time": time.perf_counter() - start,
    }


def _model_hessian(arguments: argparse.Namespace) -> tuple[str, Any]:
    # The Hessian of the training loss of --model on --dataset at its initial weights.
    from ._datasets import SADDLE_INIT_SCALE, load_dataset
    from ._models import build_model, parse_model_spec
    from ._objective import loss_function

    torch = require("torch", "torch", "hvpseries spectrum --dataset")
    from ..nn import HessianOperator

    if arguments.matrix is not None:
        message = "give either a matrix or --dataset, not both"
        raise InputError(message)
    try:
        spec = parse_model_spec(arguments.model)
        dataset = load_dataset(arguments.dataset, seed=arguments.seed)
        scale = arguments.init_scale
        if scale is None:
            scale = SADDLE_INIT_SCALE if arguments.dataset == "saddle" else 1.0
        model = build_model(
            spec,
            dataset.n_features,
            dataset.n_outputs,
            seed=arguments.seed,
            init_scale=scale,
            dtype=torch.float64,
        )
    except ValueError as error:
        raise InputError(str(error)) from None
    inputs = torch.as_tensor(dataset.x_train, dtype=torch.float64)
    targets = torch.as_tensor(dataset.y_train)
    if dataset.task == "regression":
        targets = targets.to(torch.float64)
    operator = HessianOperator(model, loss_function(dataset.task), (inputs, targets))
    return f"Hessian of {spec} on {arguments.dataset}", operator


def _summary(name: str, operator: Any, estimates: dict[str, Any]) -> dict[str, Any]:
    eigen, trace, logdet = estimates["eigenvalues"], estimates["trace"], estimates["logdet"]
    return {
        "problem": name,
        "n": int(operator.shape[0]),
        "eigenvalues": [float(v) for v in eigen.eigenvalues],
        "eigenvalue_residuals": [float(r) for r in eigen.residual_norms],
        "eigenvalues_status": eigen.status.name,
        "trace": float(trace.estimate),
        "trace_standard_error": float(trace.standard_error),
        "trace_status": trace.status.name,
        "log_abs_det": float(logdet.estimate),
        "log_abs_det_standard_error": float(logdet.standard_error),
        "log_abs_det_quadrature_error": float(logdet.quadrature_error),
        "log_abs_det_status": logdet.status.name,
        "matvecs": {
            "eigenvalues": int(eigen.n_matvec),
            "trace": int(trace.n_matvec),
            "log_abs_det": int(logdet.n_matvec),
            "density": int(estimates["density"].n_matvec),
        },
        "time": estimates["time"],
    }


def _write_plot(density: Any, path: str, title: str) -> Path:
    require("matplotlib", "plot", "plotting (--plot)")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.0, 3.8), layout="constrained")
    FigureCanvasAgg(figure)
    axis = figure.subplots()
    density.plot(ax=axis)
    axis.set_title(title)
    out = Path(path)
    try:
        figure.savefig(out)
    except (OSError, ValueError) as error:  # unknown suffix, unwritable folder
        message = f"cannot write the plot {path!r}: {error}"
        raise InputError(message) from None
    return out


def _check_arguments(arguments: argparse.Namespace, n: int) -> None:
    if not 1 <= arguments.k < n:
        message = f"--k must be in [1, n) = [1, {n}), got {arguments.k}"
        raise InputError(message)
    for name in ("rtol", "estimate_rtol"):
        value = getattr(arguments, name)
        if not (math.isfinite(value) and value > 0):
            message = f"--{name.replace('_', '-')} must be finite and > 0, got {value}"
            raise InputError(message)
    if arguments.plot is not None and Path(arguments.plot).suffix.lower() not in (
        ".png",
        ".svg",
        ".pdf",
    ):
        message = f"--plot must end in .png, .svg or .pdf, got {arguments.plot!r}"
        raise InputError(message)


def _problem(arguments: argparse.Namespace) -> tuple[str, Any]:
    # The name and the operator: a model's Hessian, a built-in problem or a matrix file.
    import hvpseries as hs

    if arguments.dataset is not None:
        return _model_hessian(arguments)
    if arguments.matrix is None:
        message = "give a matrix (a .mtx or .npz file, or helmholtz2d) or --dataset"
        raise InputError(message)
    return arguments.matrix, hs.aslinearoperator(read_matrix(arguments), symmetric=True)


def run_spectrum(arguments: argparse.Namespace) -> int:
    """Run ``hvpseries spectrum``; return the exit status."""
    try:
        name, operator = _problem(arguments)
        _check_arguments(arguments, operator.shape[0])
        if arguments.plot is not None:
            require("matplotlib", "plot", "plotting (--plot)")
        try:
            estimates = _estimates(arguments, operator)
        except (ValueError, TypeError) as error:  # the library's messages for bad input
            raise InputError(str(error)) from None
        plot = None
        if arguments.plot is not None:
            plot = _write_plot(estimates["density"], arguments.plot, name)
    except (InputError, MissingDependencyError) as error:
        return report_error("spectrum", error)
    summary = _summary(name, operator, estimates)
    if arguments.json:
        print(json.dumps(summary, indent=2))
    else:
        _print(summary, plot)
    statuses = (summary[key] for key in ("eigenvalues_status", "trace_status"))
    return 0 if all(status == "SUCCESS" for status in statuses) else 1


def _print(summary: dict[str, Any], plot: Path | None) -> None:
    values = np.asarray(summary["eigenvalues"])
    residuals = np.asarray(summary["eigenvalue_residuals"])
    matvecs = summary["matvecs"]
    print(f"problem      {summary['problem']} (n = {summary['n']})")
    print(
        f"eigenvalues  {summary['eigenvalues_status']}, {matvecs['eigenvalues']} matvecs, "
        f"largest residual {float(np.max(residuals)):.2g}"
    )
    for value in values:
        print(f"             {value: .10g}")
    print(
        f"trace        {summary['trace']:.6g} +- {summary['trace_standard_error']:.2g} "
        f"({summary['trace_status']}, {matvecs['trace']} matvecs)"
    )
    print(
        f"log|det|     {summary['log_abs_det']:.6g} +- "
        f"{summary['log_abs_det_standard_error']:.2g} (quadrature error "
        f"{summary['log_abs_det_quadrature_error']:.2g}; {summary['log_abs_det_status']}, "
        f"{matvecs['log_abs_det']} matvecs)"
    )
    print(f"density      {matvecs['density']} matvecs" + (f", plot {plot}" if plot else ""))
    print(f"time         {summary['time']:.3f} s")


SPECTRUM = Subcommand(
    "spectrum",
    help="extreme eigenvalues, trace, log|det| and spectral density of a symmetric matrix",
    description=(
        "Estimate from matvecs the extreme eigenvalues (both ends), the trace, log|det A| "
        "and the spectral density of a symmetric matrix read from a Matrix Market (.mtx) "
        "or SciPy sparse (.npz) file, built in (helmholtz2d), or of the Hessian of a "
        "model's training loss at its initial weights (--dataset and --model, as for "
        "hvpseries train). Exit status: 0 every estimate met its tolerance, 1 some did "
        "not (all are printed), 2 bad input."
    ),
    add_arguments=_add_arguments,
    run=run_spectrum,
)
