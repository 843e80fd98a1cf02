"""Text reports of an optimizer comparison record: its table and a summary in words.

The record is the one :func:`compare_optimizers` returns (or its JSON file, read back): with a
time budget (``config["budget"]``) every run has a ``time_history`` whose row ``k`` is the
state at the ``k``-th time mark, the same marks for every run, so rows compare at equal time.
"""

from __future__ import annotations

import itertools
import math
import textwrap
from collections.abc import Callable
from typing import Any

__all__ = ["describe_schedule", "format_table", "summarize"]

# The fractions of the time budget at which the equal-time table shows the training loss (the
# first time mark at or after each).
TABLE_FRACTIONS = (0.25, 0.5, 1.0)
# A training loss that rose by more than this fraction of its value between two consecutive
# evaluations is reported by the summary as a rise.
RISE_TOLERANCE = 0.01
# The width of the summary's lines.
SUMMARY_WIDTH = 100


def describe_schedule(config: dict[str, Any]) -> str:
    """Say how long each run of a record trains, e.g. ``"10 epochs of batch 128"``.

    With a time budget: its seconds, the epoch limit if there is one, and the time marks.
    """
    budget = config.get("budget")
    if budget is None:
        return f"{config['epochs']} epochs of batch {config['batch_size']}"
    epochs = config["epochs"]
    limit = "" if epochs is None else f", at most {epochs} epoch{'s' if epochs > 1 else ''}"
    return (
        f"{budget['seconds']:g} s of optimizer time each{limit} (losses at "
        f"{budget['time_points']} time marks), batch {config['batch_size']}"
    )


def format_table(record: dict[str, Any]) -> str:
    """Format a comparison record as a text table.

    Without a time budget: the last epoch of each run. With one: the training loss at the first
    time marks at or after a quarter, a half and all of the budget, the test loss (and
    accuracy) at the end of the budget, the steps and epochs the run took, the optimizer time
    per step and its ratio to the fastest optimizer's, and a line with the time each optimizer
    needed to reach the highest final training loss of the runs (a loss that every run which
    spent its budget reached). A ``-`` marks a time the run did not reach (it diverged, or the
    epoch limit ended it).

    Parameters
    ----------
    record : dict
        As returned by :func:`compare_optimizers`.

    Returns
    -------
    str
    """
    if record["config"].get("budget") is None:
        return _epoch_table(record)
    return _time_table(record)


def _epoch_table(record: dict[str, Any]) -> str:
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
            row += f"{_percent(history['test_accuracy'][last]):>11}"
        row += (
            f"{history['wall_time'][last]:>10.2f}{history['gradient'][last]:>11d}"
            f"{history['hvp'][last]:>9d}  {run['status']}"
        )
        lines.append(row)
    return "\n".join(lines)


def _time_table(record: dict[str, Any]) -> str:
    """Format the runs of a time-budget record at equal optimizer time."""
    marks = record["config"]["budget"]["time_marks"]
    columns = sorted({max(1, math.ceil(len(marks) * fraction)) for fraction in TABLE_FRACTIONS})
    classification = record["dataset"]["task"] == "classification"
    per_step = _seconds_per_step(record)
    losses = "".join(f"{_seconds(marks[row - 1]):>11}" for row in columns)
    header = f"{'optimizer':<12}{losses}{'test loss':>11}"
    if classification:
        header += f"{'test acc.':>11}"
    header += f"{'steps':>8}{'epochs':>8}{'ms/step':>9}{'x fastest':>11}  status"
    title = f"{'':<12}{'train loss at optimizer time':^{len(losses)}}"
    lines = [title.rstrip(), header, "-" * len(header)]
    for run in record["runs"]:
        if run.get("time_history"):
            lines.append(_time_row(run, columns, classification, per_step))
        else:
            lines.append(f"{run['optimizer']:<{len(header) - len('  status')}}  {run['status']}")
    reach = _reach_line(record)
    if reach:
        lines.append(textwrap.fill(reach, len(header), subsequent_indent="  "))
    return "\n".join(lines)


def _time_row(
    run: dict[str, Any], columns: list[int], classification: bool, per_step: dict[str, float]
) -> str:
    """Format one run of the equal-time table; ``columns`` are rows of its time history."""
    timeline, name, end = run["time_history"], run["optimizer"], columns[-1]
    row = f"{name:<12}" + "".join(
        f"{_cell(timeline['train_loss'], index, _number):>11}" for index in columns
    )
    row += f"{_cell(timeline['test_loss'], end, _number):>11}"
    if classification:
        row += f"{_cell(timeline['test_accuracy'], end, _percent):>11}"
    speed = ratio = "-"
    if name in per_step:
        speed = f"{1e3 * per_step[name]:.3g}"
        ratio = f"{per_step[name] / min(per_step.values()):.1f}x"
    return (
        f"{row}{run['end']['step']:>8d}{run['end']['epoch']:>8.1f}{speed:>9}{ratio:>11}"
        f"  {run['status']}"
    )


def _seconds_per_step(record: dict[str, Any]) -> dict[str, float]:
    """Return the optimizer time per step of every run that took a step."""
    result = {}
    for run in record["runs"]:
        end = run.get("end")
        if end and end["step"] > 0:
            result[run["optimizer"]] = end["wall_time"] / end["step"]
    return result


def _reach_line(record: dict[str, Any]) -> str:
    """Say how long each run took to reach the highest final training loss of the runs."""
    finals = _final_losses(record)
    if len(finals) < 2:
        return ""
    target = max(train for train, _ in finals.values())
    times = []
    for run in record["runs"]:
        timeline = run.get("time_history")
        if timeline:
            when = _time_to_reach(timeline, target)
            times.append(f"{run['optimizer']} {'not reached' if when is None else _seconds(when)}")
    return (
        f"first time mark with a training loss <= {_number(target)} (the highest final one): "
        + ", ".join(times)
    )


def _time_to_reach(timeline: dict[str, list[Any]], target: float) -> float | None:
    """Return the optimizer time of the first row with a training loss <= ``target``."""
    for loss, wall_time in zip(timeline["train_loss"], timeline["wall_time"], strict=True):
        if loss is not None and loss <= target:
            return wall_time
    return None


def _final_losses(record: dict[str, Any]) -> dict[str, tuple[float, float | None]]:
    """Return the training and test loss at the last time mark of each run that reached it."""
    end = len(record["config"]["budget"]["time_marks"])
    result = {}
    for run in record["runs"]:
        timeline = run.get("time_history")
        if (
            timeline
            and len(timeline["train_loss"]) > end
            and timeline["train_loss"][end] is not None
        ):
            result[run["optimizer"]] = (timeline["train_loss"][end], timeline["test_loss"][end])
    return result


def summarize(record: dict[str, Any]) -> str:
    """Say in words what a comparison record shows.

    Which optimizer reached the lowest training loss at equal optimizer time (with a time
    budget; without one, how far apart the runs' times are) and at equal epochs (the most
    epochs every run completed), how many epochs each run completed within a time budget, the
    runs that did not complete and why, and each run whose training loss rose by more than 1%
    between consecutive evaluations (time marks with a budget, epochs without): how often, and
    its largest rise.

    Parameters
    ----------
    record : dict
        As returned by :func:`compare_optimizers`.

    Returns
    -------
    str
        One sentence or two per line.
    """
    sentences = [
        *_status_sentences(record),
        _equal_time_sentence(record),
        *_equal_epoch_sentences(record),
        *_rise_sentences(record),
    ]
    return "\n".join(
        textwrap.fill(sentence, SUMMARY_WIDTH, subsequent_indent="  ")
        for sentence in sentences
        if sentence
    )


def _status_sentences(record: dict[str, Any]) -> list[str]:
    """Say which runs failed or diverged, or ended before their time budget was spent."""
    sentences = []
    for run in record["runs"]:
        if run["status"] != "completed":
            sentences.append(f"{run['optimizer']} {run['status']}: {run['message']}.")
        elif run["message"]:
            sentences.append(f"{run['optimizer']}: {run['message']}.")
    return sentences


def _equal_time_sentence(record: dict[str, Any]) -> str:
    """Say which run had the lowest training loss at the end of the time budget."""
    budget = record["config"].get("budget")
    if budget is None:
        return _time_range_sentence(record)
    finals = _final_losses(record)
    if not finals:
        return "No run reached the end of the time budget with a finite training loss."
    ranked = sorted(finals, key=lambda name: finals[name][0])
    train, test = finals[ranked[0]]
    if len(ranked) == 1:
        return (
            f"In {budget['seconds']:g} s of optimizer time, {ranked[0]} reached a training loss "
            f"of {_short(train)} (test loss {_short(test)})."
        )
    others = ", ".join(f"{name} {_short(finals[name][0])}" for name in ranked[1:])
    return (
        f"At equal optimizer time ({budget['seconds']:g} s each), {ranked[0]} reached the lowest "
        f"training loss, {_short(train)} (test loss {_short(test)}); {others}."
    )


def _time_range_sentence(record: dict[str, Any]) -> str:
    """Without a time budget: say how far apart the runs' optimizer times are."""
    times = {
        run["optimizer"]: run["history"]["wall_time"][-1]
        for run in record["runs"]
        if run.get("history")
    }
    if len(times) < 2:
        return ""
    fast, slow = min(times, key=times.__getitem__), max(times, key=times.__getitem__)
    return (
        f"Optimizer time ranged from {_seconds(times[fast])} ({fast}) to "
        f"{_seconds(times[slow])} ({slow}); give a time budget (--seconds) to compare the "
        "optimizers at equal time."
    )


def _equal_epoch_sentences(record: dict[str, Any]) -> list[str]:
    """Say how many epochs each run completed in a time budget, and who led at equal epochs."""
    histories = {run["optimizer"]: run["history"] for run in record["runs"] if run.get("history")}
    done = {name: history["epoch"][-1] for name, history in histories.items()}
    budget = record["config"].get("budget")
    sentences = []
    if budget is not None and done:
        counts = ", ".join(
            f"{name} {done[name]}" for name in sorted(done, key=done.__getitem__, reverse=True)
        )
        sentences.append(f"Epochs completed in {budget['seconds']:g} s: {counts}.")
    if len(done) < 2:
        return sentences
    common = min(done.values())
    if common == 0:
        names = ", ".join(name for name, count in done.items() if count == 0)
        sentences.append(f"{names} completed no epoch, so there is no comparison at equal epochs.")
        return sentences
    losses = {
        name: history["train_loss"][common]
        for name, history in histories.items()
        if history["train_loss"][common] is not None
    }
    ranked = sorted(losses, key=losses.__getitem__)
    if ranked:
        when = f"After {common} epoch{'s' if common > 1 else ''}"
        if len(set(done.values())) > 1:
            when += " (the most that every run completed)"
        sentence = f"{when}, {ranked[0]} had the lowest training loss, {_short(losses[ranked[0]])}"
        if len(ranked) > 1:
            sentence += "; " + ", ".join(f"{name} {_short(losses[name])}" for name in ranked[1:])
        sentences.append(sentence + ".")
    return sentences


def _rise_sentences(record: dict[str, Any]) -> list[str]:
    """Report each run whose training loss rose between consecutive evaluations."""
    timed = record["config"].get("budget") is not None
    timelines = {
        run["optimizer"]: run.get("time_history") if timed else run.get("history")
        for run in record["runs"]
    }
    sentences = []
    for name, timeline in timelines.items():
        if not timeline:
            continue
        rises = _rises(timeline["train_loss"])
        if not rises:
            continue
        losses = timeline["train_loss"]
        before, after = max(rises, key=lambda pair: losses[pair[1]] - losses[pair[0]])
        start, stop = losses[before], losses[after]
        if timed:
            marks = timeline["time_mark"]
            where = f"between the {_seconds(marks[before])} and {_seconds(marks[after])} marks"
        else:
            where = f"between epochs {timeline['epoch'][before]} and {timeline['epoch'][after]}"
        count = {1: "once", 2: "twice"}.get(len(rises), f"{len(rises)} times")
        sentences.append(
            f"{name}'s training loss rose between consecutive evaluations {count}; "
            f"the largest rise {where}, from {_short(start)} to {_short(stop)}."
        )
    if not sentences and any(timelines.values()):
        points = "time marks" if timed else "epochs"
        sentences.append(
            f"No training loss rose by more than {RISE_TOLERANCE:.0%} between consecutive {points}."
        )
    return sentences


def _rises(losses: list[float | None]) -> list[tuple[int, int]]:
    """Return the consecutive row pairs where a finite loss rose by more than the tolerance."""
    return [
        (index, index + 1)
        for index, (before, after) in enumerate(itertools.pairwise(losses))
        if before is not None and after is not None and after > before * (1 + RISE_TOLERANCE)
    ]


def _cell(values: list[Any], index: int, style: Callable[[Any], str]) -> str:
    """Format ``values[index]`` with ``style``; ``-`` where the run has no such row."""
    return style(values[index]) if index < len(values) else "-"


def _seconds(value: float) -> str:
    return f"{value:.3g} s"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _number(value: float | None) -> str:
    return "nan" if value is None else f"{value:.4g}"


def _short(value: float | None) -> str:
    return "nan" if value is None else f"{value:.3g}"
