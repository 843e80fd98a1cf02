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
from ._solve_command import (
    BUILT_IN,
    add_built_in_arguments,
    check_symmetric,
    helmholtz2d,
    load_matrix,
)
from ._subcommand import InputError, add_subcommand, report_error

__all__ = ["add_spectrum_parser", "run_spectrum"]


def add_spectrum_parser(commands: Any) -> None:
    """Register the ``spectrum`` subcommand on the subparsers object ``commands``."""
    parser = add_subcommand(
        commands,
        "spectrum",
        run_spectrum,
        help="extreme eigenvalues, trace, log|det| and spectral density of a symmetric matrix",
        description=(
            "Estimate from matvecs the extreme eigenvalues (both ends), the trace, log|det A| "
            "and the spectral density of a symmetric matrix read from a Matrix Market (.mtx) "
            "or SciPy sparse (.npz) file, or built in (helmholtz2d). Exit status: 0 every "
            "estimate met its tolerance, 1 some did not (all are printed), 2 bad input."
        ),
    )
    parser.add_argument(
        "matrix", help="a .mtx or .npz file, or the name of a built-in problem: helmholtz2d"
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


def _estimates(arguments: argparse.Namespace, matrix: Any) -> dict[str, Any]:
    import hvpseries as hs

    operator = hs.aslinearoperator(matrix, symmetric=True)
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


def _summary(name: str, matrix: Any, estimates: dict[str, Any]) -> dict[str, Any]:
    eigen, trace, logdet = estimates["eigenvalues"], estimates["trace"], estimates["logdet"]
    return {
        "problem": name,
        "n": int(matrix.shape[0]),
        "eigenvalues": [float(v) for v in eigen.eigenvalues],
        "eigenvalue_residuals": [float(r) for r in eigen.residual_norms],
        "eigenvalues_status": eigen.status.name,
        "trace": float(trace.estimate),
        "trace_standard_error": float(trace.standard_error),
        "trace_status": trace.status.name,
        "log_abs_det": float(logdet.estimate),
        "log_abs_det_standard_error": float(logdet.standard_error),
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


def run_spectrum(arguments: argparse.Namespace) -> int:
    """Run ``hvpseries spectrum``; return the exit status."""
    try:
        if arguments.matrix in BUILT_IN:
            matrix = helmholtz2d(arguments.grid, arguments.negative_fraction)
        else:
            matrix = load_matrix(arguments.matrix)
        check_symmetric(matrix)
        _check_arguments(arguments, matrix.shape[0])
        if arguments.plot is not None:
            require("matplotlib", "plot", "plotting (--plot)")
        try:
            estimates = _estimates(arguments, matrix)
        except (ValueError, TypeError) as error:  # the library's messages for bad input
            raise InputError(str(error)) from None
        plot = None
        if arguments.plot is not None:
            plot = _write_plot(estimates["density"], arguments.plot, arguments.matrix)
    except (InputError, MissingDependencyError) as error:
        return report_error("spectrum", error)
    summary = _summary(arguments.matrix, matrix, estimates)
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
        f"{summary['log_abs_det_standard_error']:.2g} "
        f"({summary['log_abs_det_status']}, {matvecs['log_abs_det']} matvecs)"
    )
    print(f"density      {matvecs['density']} matvecs" + (f", plot {plot}" if plot else ""))
    print(f"time         {summary['time']:.3f} s")
