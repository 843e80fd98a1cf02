"""The training loop behind ``hvpseries train`` and ``hvpseries demo``."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training needs torch")

from hvpseries._app import _loop as loop  # noqa: E402
from hvpseries._app._datasets import SADDLE_INIT_SCALE, Dataset, load_dataset  # noqa: E402
from hvpseries._app._loop import compare_optimizers, train_one  # noqa: E402
from hvpseries._app._models import build_model  # noqa: E402
from tests.app.tiny_problems import tiny_regression  # noqa: E402


def test_train_one_history_and_counters() -> None:
    data = tiny_regression()
    model = build_model("mlp:4", 3, 1, seed=0)
    run = train_one(model, data, "adam", epochs=3, batch_size=16, lr=0.05, progress=False)
    history = run["history"]
    assert run["status"] == "completed" and run["optimizer_class"] == "Adam"
    assert history["epoch"] == [0, 1, 2, 3]
    assert history["gradient"] == [0, 3, 6, 9]  # 48 samples in 3 batches of 16 per epoch
    assert history["hvp"] == [0, 0, 0, 0]
    assert history["train_accuracy"] == [None] * 4
    assert history["wall_time"][0] == 0.0
    assert all(b > a for a, b in zip(history["wall_time"], history["wall_time"][1:], strict=False))
    assert history["train_loss"][-1] < 0.5 * history["train_loss"][0]
    assert run["hyperparameters"]["lr"] == 0.05
    assert json.loads(json.dumps(run, allow_nan=False)) == run


def test_uneven_batches_use_every_sample() -> None:
    batches = loop._batches(50, 16, torch.Generator().manual_seed(0))
    assert [len(b) for b in batches] == [13, 13, 12, 12]
    assert sorted(torch.cat(batches).tolist()) == list(range(50))


def test_training_is_deterministic_and_fair() -> None:
    data = tiny_regression()
    common = {"epochs": 2, "batch_size": 16, "seed": 4, "progress": False}
    first = compare_optimizers(data, "mlp:4", ["adam", "sgd"], **common)
    again = compare_optimizers(data, "mlp:4", ["adam", "sgd"], **common)
    strip = [{k: v for k, v in run["history"].items() if k != "wall_time"} for run in first["runs"]]
    strip_again = [
        {k: v for k, v in run["history"].items() if k != "wall_time"} for run in again["runs"]
    ]
    assert strip == strip_again
    # The same initial weights for every optimizer.
    assert (
        first["runs"][0]["history"]["train_loss"][0] == first["runs"][1]["history"]["train_loss"][0]
    )
    assert first["model"] == {"spec": "mlp:4:tanh", "n_parameters": 3 * 4 + 4 + 4 + 1}
    assert first["config"]["dtype"] == "float32"


def test_divergence_stops_the_run() -> None:
    data = tiny_regression()
    model = build_model("mlp:4", 3, 1, seed=0)
    run = train_one(model, data, "sgd", epochs=50, batch_size=8, lr=1e4, progress=False)
    assert run["status"] == "diverged"
    assert "NaN or infinite" in run["message"]
    assert run["history"]["train_loss"][-1] is None  # stored as null, strict JSON
    assert len(run["history"]["epoch"]) < 51
    json.dumps(run, allow_nan=False)


def test_classification_reports_accuracy() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 2))
    y = (x[:, 0] > 0).astype(np.int64)
    data = Dataset("blobs", "classification", x[:40], y[:40], x[40:], y[40:], 2, "test")
    run = train_one(
        build_model("linear", 2, 2), data, "adam", epochs=5, batch_size=10, lr=0.1, progress=False
    )
    accuracy = run["history"]["test_accuracy"]
    assert all(0.0 <= a <= 1.0 for a in accuracy) and accuracy[-1] >= 0.8


def test_on_error_record_keeps_the_other_runs(monkeypatch) -> None:
    original = loop.train_one

    def failing(model, dataset, name, **keywords):
        if name == "sgd":
            message = "boom"
            raise RuntimeError(message)
        return original(model, dataset, name, **keywords)

    monkeypatch.setattr(loop, "train_one", failing)
    data = tiny_regression()
    record = compare_optimizers(
        data, "mlp:2", ["adam", "sgd"], epochs=1, progress=False, on_error="record"
    )
    assert [run["status"] for run in record["runs"]] == ["completed", "failed"]
    assert record["runs"][1]["message"] == "RuntimeError: boom"
    with pytest.raises(RuntimeError, match="boom"):
        compare_optimizers(data, "mlp:2", ["sgd"], epochs=1, progress=False)


def test_compare_checks_configuration_before_training() -> None:
    data = tiny_regression()
    with pytest.raises(ValueError, match="not compared: sgd"):
        compare_optimizers(data, "mlp:2", ["adam"], lr={"sgd": 0.1})
    with pytest.raises(ValueError, match="has no option"):
        compare_optimizers(data, "mlp:2", ["adam", "sgd"], options={"sgd": {"bad": 1}})


@pytest.mark.parametrize("name", ["series-sfn", "krylov-sfn", "exact-sfn"])
def test_sfn_optimizers_train(name) -> None:
    pytest.importorskip("hvpseries.optim")
    data = tiny_regression()
    model = build_model("mlp:4", 3, 1, seed=0, dtype=torch.float64)
    options = {"maxiter": 10} if name == "krylov-sfn" else None
    run = train_one(model, data, name, epochs=3, batch_size=24, options=options, progress=False)
    history = run["history"]
    assert run["status"] == "completed"
    assert history["gradient"][-1] == 6 and history["hvp"][-1] > 0
    assert history["loss"][-1] >= 6
    assert history["train_loss"][-1] < 0.5 * history["train_loss"][0]


def test_sfn_escapes_the_saddle_that_holds_sgd() -> None:
    """On the saddle problem (one hidden layer, started at 1e-3) exact SFN leaves the saddle
    within two epochs while SGD has not moved (the claim the docs make)."""
    pytest.importorskip("hvpseries.optim")
    data = load_dataset("saddle", seed=0)
    record = compare_optimizers(
        data,
        "mlp:8",
        ["exact-sfn", "sgd"],
        epochs=3,
        init_scale=SADDLE_INIT_SCALE,
        dtype=torch.float64,
        progress=False,
    )
    exact, sgd = (run["history"]["train_loss"] for run in record["runs"])
    assert exact[-1] < 0.5
    assert sgd[-1] > 0.95
