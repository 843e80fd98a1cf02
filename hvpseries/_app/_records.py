"""Run records of ``hvpseries train``: JSON-friendly values, the JSON file and the plot."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ._dependencies import require

__all__ = ["finite_or_none", "hyperparameters", "plot_record", "save_record"]

# Curves with more points than this are drawn without a dot at each point.
MAX_MARKERS = 60


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

    A third panel shows test accuracy for classification. Failed runs are left out. With a
    time budget (``record["config"]["budget"]``) the wall-time panel comes first and shows the
    losses at the time marks (``time_history``), with a grey line at the budget; the epoch
    axis is then logarithmic beyond epoch 1 (fast optimizers complete many more epochs), and
    the accuracy is drawn against wall time.

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
    config = record.get("config", {})
    budget = config.get("budget")
    panels = 3 if classification else 2
    figure = Figure(figsize=(4.6 * panels, 3.8), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, panels)
    # The equal-time comparison comes first when there is one.
    epoch_axis, time_axis = (axes[1], axes[0]) if budget else (axes[0], axes[1])
    for index, run in enumerate(record["runs"]):
        history = run.get("history")
        if not history:
            continue
        color = f"C{index}"
        timeline = run.get("time_history") or history  # the per-epoch rows without a budget
        _plot_losses(epoch_axis, history["epoch"], history, color, run["optimizer"])
        _plot_losses(time_axis, timeline["wall_time"], timeline, color, run["optimizer"])
        if classification:
            x = timeline["wall_time" if budget else "epoch"]
            accuracy = [_nan_if_none(v) for v in timeline["test_accuracy"]]
            axes[2].plot(x, accuracy, color=color, label=run["optimizer"], marker=".")
    loss_name = "cross-entropy" if classification else "mean squared error (standardised)"
    time_name = "wall time of the optimizer (s)"
    for axis, xlabel in ((epoch_axis, "epoch"), (time_axis, time_name)):
        axis.set_xlabel(xlabel)
        axis.set_ylabel(loss_name)
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
    epoch_axis.legend(fontsize="small")
    if budget:
        epoch_axis.set_xscale("symlog", linthresh=1.0)
        epoch_axis.set_xlim(left=0.0)
        time_axis.axvline(budget["seconds"], color="0.5", linewidth=0.8)
        time_axis.set_title(f"equal optimizer time: {budget['seconds']:g} s each", fontsize="small")
    else:
        epoch_axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    if classification:
        axes[2].set_xlabel(time_name if budget else "epoch")
        axes[2].set_ylabel("test accuracy")
        axes[2].grid(True, alpha=0.3)
        axes[2].legend(fontsize="small")
        if not budget:
            axes[2].xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.suptitle(
        title
        or (
            f"{record['dataset']['name']}, {record['model']['spec']} "
            f"({record['model']['n_parameters']} parameters), batch {config.get('batch_size')}"
        )
    )
    figure.savefig(path, dpi=120)


def _plot_losses(
    axis: Any, x: list[float], history: dict[str, list[Any]], color: str, label: str
) -> None:
    """Draw one run's training (solid, dots) and test (dashed) loss against ``x``."""
    train_loss = [_nan_if_none(v) for v in history["train_loss"]]
    test_loss = [_nan_if_none(v) for v in history["test_loss"]]
    marker = "." if len(x) <= MAX_MARKERS else None
    axis.plot(x, train_loss, color=color, label=f"{label} train", marker=marker)
    axis.plot(x, test_loss, color=color, linestyle="--", label=f"{label} test")


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else value
