"""Run records of ``hvpseries train``: the JSON file and the plot."""

from __future__ import annotations

import json
import sys

import pytest

torch = pytest.importorskip("torch", reason="training needs torch")

from hvpseries._app._dependencies import MissingDependencyError  # noqa: E402
from hvpseries._app._loop import compare_optimizers  # noqa: E402
from hvpseries._app._records import plot_record, save_record  # noqa: E402
from tests.app.tiny_problems import tiny_regression  # noqa: E402


def small_record() -> dict:
    data = tiny_regression()
    return compare_optimizers(data, "mlp:2", ["adam", "sgd"], epochs=2, progress=False)


def test_save_record_is_strict_json(tmp_path) -> None:
    record = small_record()
    save_record(record, tmp_path / "run.json")
    assert json.loads((tmp_path / "run.json").read_text()) == record


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_plot_record_writes_an_image(tmp_path, task) -> None:
    pytest.importorskip("matplotlib")
    record = small_record()
    if task == "classification":
        record["dataset"]["task"] = "classification"
        for run in record["runs"]:
            run["history"]["test_accuracy"] = [0.5] * len(run["history"]["epoch"])
    record["runs"].append({"optimizer": "x", "status": "failed", "message": "", "history": None})
    plot_record(record, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_names_the_extra(monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingDependencyError, match=r"hvpseries\[plot\]"):
        plot_record({"runs": []}, tmp_path / "curves.png")
