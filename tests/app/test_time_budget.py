"""Equal-time comparisons: the time budget, its marks, the records, the table and the words.

Most tests replace the step timer by a fake clock (every step takes a fixed, exactly
representable time), which makes the stopping point and the rows at each mark exact; the
others use the real clock with tiny budgets and assert only what does not depend on speed.
"""

from __future__ import annotations

import json
import math

import pytest

from hvpseries._app._budget import MAX_TIME_POINTS, TimeBudget
from hvpseries._app._report import format_table, summarize

torch = pytest.importorskip("torch", reason="training needs torch")

from hvpseries._app import _loop as loop  # noqa: E402
from hvpseries._app._loop import compare_optimizers, train_one  # noqa: E402
from hvpseries._app._models import build_model  # noqa: E402
from hvpseries._app._records import plot_record, save_record  # noqa: E402
from tests.app.tiny_problems import tiny_regression  # noqa: E402

# tiny_regression has 48 training samples: 3 batches of 16 per epoch.
BATCH = 16
STEP_SECONDS = 1 / 64  # exact in binary, so sums of steps are exact


@pytest.fixture
def fake_clock(monkeypatch):
    """Make every optimizer step take ``STEP_SECONDS`` of optimizer time."""
    real_step = loop._timed_step

    def timed_step(torch_module, optimizer, closure, device):
        loss, _ = real_step(torch_module, optimizer, closure, device)
        return loss, STEP_SECONDS

    monkeypatch.setattr(loop, "_timed_step", timed_step)


def tiny_run(name: str = "adam", **keywords) -> dict:
    model = build_model("mlp:4", 3, 1, seed=0)
    keywords = {"batch_size": BATCH, "lr": 0.05, "progress": False, **keywords}
    return train_one(model, tiny_regression(), name, **keywords)


# ------------------------------------------------------------------------------ the budget


def test_marks_divide_the_budget_and_end_exactly_at_it() -> None:
    budget = TimeBudget(0.3, 3)
    assert budget.marks == pytest.approx((0.1, 0.2, 0.3))
    assert budget.marks[-1] == 0.3
    assert [budget.marks_reached(t) for t in (0.0, 0.1, 0.15, 0.3, 5.0)] == [0, 1, 1, 3, 3]
    assert budget.summary() == {"seconds": 0.3, "time_points": 3, "time_marks": list(budget.marks)}
    assert TimeBudget(2).seconds == 2.0 and len(TimeBudget(2).marks) == 20


@pytest.mark.parametrize("seconds", [0, -1.0, math.nan, math.inf, -math.inf])
def test_budget_refuses_seconds_that_are_not_positive_and_finite(seconds) -> None:
    with pytest.raises(ValueError, match=r"seconds must be finite and > 0, got"):
        TimeBudget(seconds)


@pytest.mark.parametrize("seconds", ["3", True, None])
def test_budget_refuses_seconds_that_are_not_numbers(seconds) -> None:
    with pytest.raises(TypeError, match="seconds must be a real number"):
        TimeBudget(seconds)


@pytest.mark.parametrize("time_points", [0, -3, 2.5, True, MAX_TIME_POINTS + 1])
def test_budget_refuses_bad_time_points(time_points) -> None:
    with pytest.raises(
        ValueError, match=f"time_points must be an integer from 1 to {MAX_TIME_POINTS}"
    ):
        TimeBudget(1.0, time_points)


def test_train_one_checks_the_budget_before_training() -> None:
    with pytest.raises(ValueError, match="seconds must be finite and > 0"):
        tiny_run(seconds=0.0)
    with pytest.raises(ValueError, match="time_points must be"):
        tiny_run(seconds=0.1, time_points=0)
    with pytest.raises(ValueError, match="time_points=5 needs seconds"):
        tiny_run(time_points=5)
    with pytest.raises(ValueError, match="seconds must be finite"):
        compare_optimizers(tiny_regression(), "mlp:2", ["adam"], seconds=math.nan)


# ------------------------------------------------------------------------------ the loop


def test_the_budget_stops_the_run_after_the_step_that_reaches_it(fake_clock) -> None:
    run = tiny_run(seconds=0.25, time_points=4)
    timeline = run["time_history"]
    assert run["status"] == "completed" and run["message"] == ""
    # 16 steps of 1/64 s reach 0.25 s; the marks fall after steps 4, 8, 12 and 16.
    assert timeline["time_mark"] == [0.0, 0.0625, 0.125, 0.1875, 0.25]
    assert timeline["wall_time"] == timeline["time_mark"]
    assert timeline["step"] == [0, 4, 8, 12, 16]
    assert timeline["epoch"] == [step / 3 for step in timeline["step"]]
    assert timeline["gradient"] == timeline["step"]
    assert run["end"] == {"wall_time": 0.25, "step": 16, "epoch": 16 / 3}
    # Epochs continue until the time is spent: 5 complete epochs, the 6th cut short.
    assert run["history"]["epoch"] == [0, 1, 2, 3, 4, 5]
    assert run["history"]["train_loss"][0] == timeline["train_loss"][0]
    assert set(timeline) == set(loop.TIME_HISTORY_KEYS)
    assert set(run["history"]) == set(loop.HISTORY_KEYS)


def test_a_long_step_gives_every_mark_it_reaches_the_same_state(fake_clock) -> None:
    run = tiny_run(seconds=2 * STEP_SECONDS, time_points=4)
    timeline = run["time_history"]
    assert timeline["step"] == [0, 1, 1, 2, 2]
    assert timeline["time_mark"] == [0.0, 1 / 128, 2 / 128, 3 / 128, 4 / 128]
    assert timeline["train_loss"][1] == timeline["train_loss"][2]
    assert timeline["train_loss"][1] != timeline["train_loss"][3]
    assert run["history"]["epoch"] == [0]  # no epoch completed


def test_the_epoch_limit_can_end_a_run_before_its_budget(fake_clock) -> None:
    run = tiny_run(seconds=1.0, time_points=4, epochs=2)
    assert run["status"] == "completed"
    assert "epoch limit (2)" in run["message"] and "1 s was spent" in run["message"]
    assert run["end"]["step"] == 6
    assert run["history"]["epoch"] == [0, 1, 2]
    assert run["time_history"]["time_mark"] == [0.0]  # 6 / 64 s: no mark reached


def test_a_budget_exactly_spent_at_the_epoch_limit_is_no_early_end(fake_clock) -> None:
    run = tiny_run(seconds=6 * STEP_SECONDS, time_points=2, epochs=2)
    assert (run["status"], run["message"]) == ("completed", "")
    assert run["time_history"]["step"] == [0, 3, 6]
    assert run["history"]["epoch"] == [0, 1, 2]


def test_divergence_ends_a_timed_run(fake_clock) -> None:
    run = tiny_run("sgd", seconds=10.0, time_points=1000, lr=1e4, batch_size=8)
    assert run["status"] == "diverged"
    assert "became NaN or infinite by" in run["message"] and "of optimizer time" in run["message"]
    assert run["end"]["wall_time"] < 10.0
    assert len(run["time_history"]["time_mark"]) < 1001
    json.dumps(run, allow_nan=False)


def test_a_fake_clock_makes_timed_runs_reproducible(fake_clock) -> None:
    assert tiny_run(seconds=0.2, time_points=5) == tiny_run(seconds=0.2, time_points=5)


def test_every_optimizer_is_evaluated_at_the_same_marks() -> None:
    """With the real clock: the marks are those of the budget, whatever each step costs."""
    record = compare_optimizers(
        tiny_regression(),
        "mlp:4",
        ["adam", "sgd"],
        seconds=0.2,
        time_points=5,
        batch_size=BATCH,
        progress=False,
    )
    marks = record["config"]["budget"]["time_marks"]
    assert record["config"]["budget"]["seconds"] == 0.2 and len(marks) == 5
    assert record["config"]["epochs"] is None
    for run in record["runs"]:
        timeline = run["time_history"]
        assert run["status"] == "completed"
        assert timeline["time_mark"] == [0.0, *marks]
        assert all(t >= mark for t, mark in zip(timeline["wall_time"][1:], marks, strict=True))
        assert timeline["wall_time"] == sorted(timeline["wall_time"])
        assert run["end"]["wall_time"] == timeline["wall_time"][-1] >= 0.2
    # The same initial weights: the same loss at mark 0.
    assert len({run["time_history"]["train_loss"][0] for run in record["runs"]}) == 1


def test_without_a_budget_the_record_is_per_epoch_only() -> None:
    record = compare_optimizers(tiny_regression(), "mlp:2", ["sgd"], batch_size=48, progress=False)
    assert record["config"]["budget"] is None and record["config"]["epochs"] == 10
    run = record["runs"][0]
    assert "time_history" not in run and "end" not in run
    assert run["history"]["epoch"] == list(range(11))


def test_a_failed_timed_run_has_no_time_history(monkeypatch) -> None:
    def failing(*arguments, **keywords):
        message = "boom"
        raise RuntimeError(message)

    monkeypatch.setattr(loop, "train_one", failing)
    record = compare_optimizers(
        tiny_regression(), "mlp:2", ["adam"], seconds=0.1, progress=False, on_error="record"
    )
    assert record["runs"][0]["time_history"] is None
    assert format_table(record).splitlines()[-1].split() == ["adam", "failed"]
    assert summarize(record).splitlines() == [
        "adam failed: RuntimeError: boom.",
        "No run reached the end of the time budget with a finite training loss.",
    ]


def test_timed_record_round_trips_through_json(fake_clock, tmp_path) -> None:
    record = compare_optimizers(
        tiny_regression(), "mlp:2", ["adam", "sgd"], seconds=0.1, time_points=4, progress=False
    )
    save_record(record, tmp_path / "run.json")
    again = json.loads((tmp_path / "run.json").read_text())
    assert again == record
    assert format_table(again) == format_table(record)
    assert summarize(again) == summarize(record)


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_plot_of_a_timed_record(fake_clock, tmp_path, task) -> None:
    pytest.importorskip("matplotlib")
    record = compare_optimizers(
        tiny_regression(), "mlp:2", ["adam", "sgd"], seconds=0.1, time_points=4, progress=False
    )
    if task == "classification":
        record["dataset"]["task"] = "classification"
        for run in record["runs"]:
            for history in (run["history"], run["time_history"]):
                history["test_accuracy"] = [0.5] * len(history["epoch"])
    plot_record(record, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_progress_bar_counts_seconds(tmp_path) -> None:
    with (tmp_path / "bar.txt").open("w") as file:
        tiny_run(seconds=0.01, time_points=1, progress=True, progress_file=file)
    assert "s of optimizer time" in (tmp_path / "bar.txt").read_text()


# ------------------------------------------------------------------------------ table, words


def history(losses: list, step: list, epochs: list | None = None) -> dict:
    """A time history with the given training losses (test loss: the same plus 0.1)."""
    rows = len(losses)
    return {
        "time_mark": [0.25 * k for k in range(rows)],
        "step": step,
        "epoch": epochs if epochs is not None else [s / 10 for s in step],
        "train_loss": losses,
        "test_loss": [None if v is None else v + 0.1 for v in losses],
        "train_accuracy": [None] * rows,
        "test_accuracy": [None] * rows,
        "wall_time": [0.25 * k + 0.01 * (k > 0) for k in range(rows)],
        "hvp": [0] * rows,
        "gradient": step,
        "loss": step,
    }


def epochs_history(losses: list) -> dict:
    rows = len(losses)
    return {
        "epoch": list(range(rows)),
        "train_loss": losses,
        "test_loss": losses,
        "train_accuracy": [None] * rows,
        "test_accuracy": [None] * rows,
        "wall_time": [0.1 * k for k in range(rows)],
        "hvp": [0] * rows,
        "gradient": list(range(rows)),
        "loss": list(range(rows)),
    }


def timed_record() -> dict:
    """Two runs over four marks of 0.25 s: fast improves steadily; slow rises once."""
    fast = history([2.0, 1.0, 0.5, 0.25, 0.125], [0, 100, 200, 300, 400])
    slow = history([2.0, 0.4, 0.6, 0.12, 0.1], [0, 5, 10, 15, 20])
    runs = []
    for name, timeline, epochs in (("fast", fast, [2.0, 1.0, 0.5]), ("slow", slow, [2.0, 0.3])):
        runs.append(
            {
                "optimizer": name,
                "status": "completed",
                "message": "",
                "history": epochs_history(epochs if name == "slow" else [2.0, 1.5, 1.2]),
                "time_history": timeline,
                "end": {
                    "wall_time": timeline["wall_time"][-1],
                    "step": timeline["step"][-1],
                    "epoch": timeline["epoch"][-1],
                },
            }
        )
    return {
        "dataset": {"name": "tiny", "task": "regression"},
        "config": {
            "epochs": None,
            "batch_size": 16,
            "budget": {"seconds": 1.0, "time_points": 4, "time_marks": [0.25, 0.5, 0.75, 1.0]},
        },
        "runs": runs,
    }


def test_the_time_table_compares_at_equal_time() -> None:
    lines = format_table(timed_record()).splitlines()
    assert "train loss at optimizer time" in lines[0]
    assert lines[1].split()[:4] == ["optimizer", "0.25", "s", "0.5"]
    assert "ms/step" in lines[1] and "x fastest" in lines[1]
    fast, slow = lines[3].split(), lines[4].split()
    # loss at 0.25 s, 0.5 s, 1 s; test loss at 1 s; steps, epochs, ms/step, x fastest, status
    assert fast == [
        "fast",
        "1",
        "0.5",
        "0.125",
        "0.225",
        "400",
        "40.0",
        "2.52",
        "1.0x",
        "completed",
    ]
    assert slow == ["slow", "0.4", "0.6", "0.1", "0.2", "20", "2.0", "50.5", "20.0x", "completed"]
    # The highest final loss is fast's 0.125; slow reached it at its 0.75 s mark.
    assert "<= 0.125 (the highest final one): fast 1.01 s, slow 0.76 s" in lines[5]


def test_the_time_table_marks_times_a_run_did_not_reach() -> None:
    record = timed_record()
    run = record["runs"][1]
    run["status"], run["message"] = "diverged", "the training loss became NaN or infinite"
    for values in run["time_history"].values():
        del values[3:]
    run["time_history"]["train_loss"][-1] = None
    row = format_table(record).splitlines()[4].split()
    assert row[:5] == ["slow", "0.4", "nan", "-", "-"] and row[-1] == "diverged"


def test_the_summary_says_what_the_record_shows() -> None:
    words = summarize(timed_record()).replace("\n  ", " ").splitlines()
    assert words == [
        "At equal optimizer time (1 s each), slow reached the lowest training loss, 0.1 "
        "(test loss 0.2); fast 0.125.",
        "Epochs completed in 1 s: fast 2, slow 1.",
        "After 1 epoch (the most that every run completed), slow had the lowest training loss, "
        "0.3; fast 1.5.",
        "slow's training loss rose between consecutive evaluations once; the largest rise "
        "between the 0.25 s and 0.5 s marks, from 0.4 to 0.6.",
    ]


def test_the_summary_without_a_budget_or_a_rise() -> None:
    record = timed_record()
    record["config"]["budget"] = None
    for run in record["runs"]:
        del run["time_history"], run["end"]
    record["runs"][1]["history"] = epochs_history([2.0, 0.9, 0.8])
    record["runs"][1]["history"]["wall_time"] = [0.0, 1.0, 2.0]
    words = summarize(record).replace("\n  ", " ").splitlines()
    assert words[0].startswith("Optimizer time ranged from 0.2 s (fast) to 2 s (slow); give a")
    assert words[1] == "After 2 epochs, slow had the lowest training loss, 0.8; fast 1.2."
    assert words[2] == "No training loss rose by more than 1% between consecutive epochs."


def test_the_summary_when_a_run_completed_no_epoch() -> None:
    record = timed_record()
    record["runs"][1]["history"] = epochs_history([2.0])
    words = summarize(record)
    assert "slow completed no epoch, so there is no comparison at equal epochs." in words
    assert "Epochs completed in 1 s: fast 2, slow 0." in words


def test_the_summary_reports_runs_that_did_not_complete() -> None:
    record = timed_record()
    record["runs"][0].update(status="diverged", message="the loss became NaN")
    record["runs"][1]["message"] = "the epoch limit (3) ended the run"
    words = summarize(record).splitlines()
    assert words[:2] == [
        "fast diverged: the loss became NaN.",
        "slow: the epoch limit (3) ended the run.",
    ]


def test_a_rise_within_the_tolerance_is_no_rise() -> None:
    record = timed_record()
    losses = record["runs"][1]["time_history"]["train_loss"]
    losses[4] = losses[3] * 1.005
    assert "consecutive evaluations once;" in summarize(record).replace("\n  ", " ")
    losses[4] = losses[3] * 1.02
    assert "consecutive evaluations twice;" in summarize(record).replace("\n  ", " ")


def test_the_summary_of_a_single_run() -> None:
    record = timed_record()
    del record["runs"][1]
    assert summarize(record).replace("\n  ", " ").splitlines() == [
        "In 1 s of optimizer time, fast reached a training loss of 0.125 (test loss 0.225).",
        "Epochs completed in 1 s: fast 2.",
        "No training loss rose by more than 1% between consecutive time marks.",
    ]
    assert "first time mark" not in format_table(record)
