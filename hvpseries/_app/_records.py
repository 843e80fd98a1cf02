"""Run records of ``hvpseries train``: JSON-friendly values, the JSON file and the plot."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ._dependencies import require

__all__ = ["finite_or_none", "hyperparameters", "plot_record", "save_record"]


def hyperparameters(optimizer: Any) -> dict[str, Any]:
    """Return the optimizer's defaults as JSON-friendly values."""
    result = {}
    for key, value in getattr(optimizer, "defaults", {}).items():
        if isinstance(value, bool | int | float | str) or value is None:
            result[key] = finite_or_none(value) if isinstance(value, float) else value
        elif isinstance(value, tuple | list) and all(isinstance(v, int | float) for v in value):
            result[key] = [finite_or_none(float(v)) for v in value]
        else:
            result[key] = repr(value)
    return result


def finite_or_none(value: float) -> float | None:
    """Return ``value``, or None when it is NaN or infinite (strict JSON has neither)."""
    return value if math.isfinite(value) else None


def save_record(record: dict[str, Any], path: str | Path) -> None:
    """Write a record as strict JSON (non-finite numbers were already stored as null)."""
    text = json.dumps(record, indent=2, allow_nan=False)
    Path(path).write_text(text + "\n")


def plot_record(record: dict[str, Any], path: str | Path, *, title: str | None = None) -> None:
    """Plot training (solid) and test (dashed) loss against epoch and against wall time.

    A third panel shows test accuracy for classification. Failed runs are left out.

    Parameters
    ----------
    record : dict
        As returned by :func:`compare_optimizers`.
    path : str or Path
        Output file; the format follows the suffix (``.png``, ``.svg``, ``.pdf``).
    title : str, optional
        Default: dataset and model.

    Raises
    ------
    MissingDependencyError
        Without matplotlib.
    """
    require("matplotlib", "plot", "plotting (--plot)")
    # The object-oriented API with an explicit Agg canvas: no global backend state is touched
    # and no display is needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    classification = record["dataset"]["task"] == "classification"
    panels = 3 if classification else 2
    figure = Figure(figsize=(4.6 * panels, 3.8), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, panels)
    for index, run in enumerate(record["runs"]):
        history = run.get("history")
        if not history:
            continue
        color = f"C{index}"
        label = run["optimizer"]
        train_loss = [_nan_if_none(v) for v in history["train_loss"]]
        test_loss = [_nan_if_none(v) for v in history["test_loss"]]
        for axis, x in ((axes[0], history["epoch"]), (axes[1], history["wall_time"])):
            axis.plot(x, train_loss, color=color, label=f"{label} train", marker=".")
            axis.plot(x, test_loss, color=color, linestyle="--", label=f"{label} test")
        if classification:
            accuracy = [_nan_if_none(v) for v in history["test_accuracy"]]
            axes[2].plot(history["epoch"], accuracy, color=color, label=label, marker=".")
    loss_name = "cross-entropy" if classification else "mean squared error (standardised)"
    for axis, xlabel in ((axes[0], "epoch"), (axes[1], "wall time of the optimizer (s)")):
        axis.set_xlabel(xlabel)
        axis.set_ylabel(loss_name)
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize="small")
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    if classification:
        axes[2].set_xlabel("epoch")
        axes[2].set_ylabel("test accuracy")
        axes[2].grid(True, alpha=0.3)
        axes[2].legend(fontsize="small")
        axes[2].xaxis.set_major_locator(MaxNLocator(integer=True))
    config = record.get("config", {})
    figure.suptitle(
        title
        or (
            f"{record['dataset']['name']}, {record['model']['spec']} "
            f"({record['model']['n_parameters']} parameters), batch {config.get('batch_size')}"
        )
    )
    figure.savefig(path, dpi=120)


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else value
