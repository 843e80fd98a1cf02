"""Datasets, models, optimizers and the training loop behind ``hvpseries train``/``demo``."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training needs torch")

from hvpseries._app import _training as training  # noqa: E402
from hvpseries._app._training import (  # noqa: E402
    Dataset,
    MissingDependencyError,
    ModelSpec,
    build_model,
    compare_optimizers,
    load_dataset,
    make_optimizer,
    parse_model_spec,
    plot_record,
    save_record,
    train_one,
)


def tiny_regression(seed: int = 0, n: int = 64) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3))
    y = (x @ np.array([1.0, -2.0, 0.5]))[:, None] + 0.1 * rng.standard_normal((n, 1))
    return Dataset("tiny", "regression", x[:48], y[:48], x[48:], y[48:], 0, "test data")


# ------------------------------------------------------------------------------ datasets


@pytest.mark.parametrize(
    ("name", "task", "features", "outputs", "samples"),
    [("digits", "classification", 64, 10, 1797), ("diabetes", "regression", 10, 1, 442)],
)
def test_bundled_datasets(name, task, features, outputs, samples) -> None:
    pytest.importorskip("sklearn", reason="the bundled datasets come with scikit-learn")
    data = load_dataset(name, seed=3)
    assert (data.task, data.n_features, data.n_outputs) == (task, features, outputs)
    assert data.x_train.shape[0] + data.x_test.shape[0] == samples
    assert data.x_test.shape[0] == round(0.25 * samples)
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0.0, atol=1e-12)
    spread = data.x_train.std(axis=0)
    assert np.all((np.abs(spread - 1) < 1e-12) | (spread == 0))  # digits: constant pixels
    summary = data.summary()
    assert json.loads(json.dumps(summary)) == summary
    if task == "classification":
        assert data.y_train.dtype == np.int64
        assert set(np.unique(data.y_train)) == set(range(10))
    else:
        np.testing.assert_allclose(data.y_train.mean(), 0.0, atol=1e-12)
        np.testing.assert_allclose(data.y_train.std(), 1.0)


def test_split_is_deterministic_in_the_seed() -> None:
    first, again, other = (load_dataset("saddle", seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(first.x_train, again.x_train)
    np.testing.assert_array_equal(first.y_test, again.y_test)
    assert not np.array_equal(first.x_train, other.x_train)


def test_saddle_dataset_is_a_saddle_at_zero() -> None:
    data = load_dataset("saddle", seed=0)
    assert (data.task, data.n_features, data.n_outputs) == ("regression", 8, 4)
    # The input-output correlation has the designed singular values (after standardisation
    # of the targets they are spread, but four clearly nonzero modes remain).
    correlation = data.y_train.T @ data.x_train / data.x_train.shape[0]
    singular = np.linalg.svd(correlation, compute_uv=False)
    assert singular.shape == (4,) and np.all(singular > 0.1)
    # At zero weights the gradient of a one-hidden-layer tanh net vanishes: a critical point.
    model = build_model("mlp:3", 8, 4, init_scale=1e-12, dtype=torch.float64)
    x = torch.as_tensor(data.x_train)
    y = torch.as_tensor(data.y_train)
    loss = torch.nn.functional.mse_loss(model(x), y)
    gradient = torch.autograd.grad(loss, list(model.parameters()))
    assert max(float(g.abs().max()) for g in gradient) < 1e-6


def write(tmp_path, text: str, name: str = "data.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_csv_classification_with_header(tmp_path) -> None:
    rows = "\n".join(f"{i},{i % 3 * 2.5},{i % 3 + 5}" for i in range(20))
    data = load_dataset("csv:" + write(tmp_path, "a,b,label\n" + rows), seed=0)
    assert data.task == "classification"
    assert data.n_classes == 3  # labels 5, 6, 7 mapped to 0, 1, 2
    assert set(np.unique(np.concatenate([data.y_train, data.y_test]))) == {0, 1, 2}
    assert data.n_features == 2


def test_csv_regression_and_task_override(tmp_path) -> None:
    rows = "\n".join(f"{i},{np.sin(i):.6f}" for i in range(30))
    path = write(tmp_path, rows)
    assert load_dataset("csv:" + path).task == "regression"
    integer_rows = "\n".join(f"{i},{i * 7}" for i in range(30))
    integer_path = write(tmp_path, integer_rows, "integers.csv")
    assert load_dataset("csv:" + integer_path).task == "classification"
    assert load_dataset("csv:" + integer_path, task="regression").task == "regression"
    many = "\n".join(f"{i},{i}" for i in range(200))  # 200 distinct integers: a regression
    assert load_dataset("csv:" + write(tmp_path, many, "many.csv")).task == "regression"


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("1,2\n3\n5,6\n7,8\n", "different numbers of columns"),
        ("1,2\n3,x\n5,6\n7,8\n", "row 2 is not all numbers"),
        ("1,2\n3,nan\n5,6\n7,8\n", "NaN or infinite"),
        ("1\n2\n3\n4\n", "at least two columns"),
        ("1,2\n3,4\n", "at least 4"),
        ("1,0\n2,0\n3,0\n4,0\n5,0\n", "at least two distinct labels"),
    ],
)
def test_bad_csv_files(tmp_path, content, match) -> None:
    with pytest.raises(ValueError, match=match):
        load_dataset("csv:" + write(tmp_path, content))


@pytest.mark.parametrize(
    ("spec", "keywords", "error", "match"),
    [
        ("mnist", {}, ValueError, "unknown dataset 'mnist'"),
        ("csv:", {}, ValueError, "needs a file name"),
        ("csv:/no/such/file.csv", {}, ValueError, "does not exist"),
        ("saddle", {"test_fraction": 1.0}, ValueError, "test_fraction"),
        ("saddle", {"task": "classification"}, ValueError, "regression problem"),
        ("saddle", {"task": "clustering"}, ValueError, "task must be"),
        (3, {}, TypeError, "dataset must be a string"),
    ],
)
def test_bad_dataset_arguments(spec, keywords, error, match) -> None:
    with pytest.raises(error, match=match):
        load_dataset(spec, **keywords)


def test_missing_scikit_learn_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'hvpseries\[examples\]'"):
        load_dataset("digits")


# ------------------------------------------------------------------------------ models


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("mlp:50", ModelSpec((50,), "tanh")),
        ("mlp:50,20", ModelSpec((50, 20), "tanh")),
        ("mlp:8:relu", ModelSpec((8,), "relu")),
        ("linear", ModelSpec((), "tanh")),
    ],
)
def test_parse_model_spec(spec, expected) -> None:
    assert parse_model_spec(spec) == expected


@pytest.mark.parametrize(
    "spec", ["mlp", "mlp:", "cnn:5", "mlp:0", "mlp:5,-1", "mlp:a", "mlp:5:swish", "mlp:5,,3"]
)
def test_bad_model_specs(spec) -> None:
    with pytest.raises(ValueError, match=r"model|widths|activation"):
        parse_model_spec(spec)


def test_build_model_is_seeded_and_leaves_the_global_state() -> None:
    state = torch.random.get_rng_state()
    first = build_model("mlp:6,5", 4, 3, seed=7)
    second = build_model("mlp:6,5", 4, 3, seed=7)
    other = build_model("mlp:6,5", 4, 3, seed=8)
    assert torch.equal(state, torch.random.get_rng_state())
    assert sum(p.numel() for p in first.parameters()) == 4 * 6 + 6 + 6 * 5 + 5 + 5 * 3 + 3
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(next(first.parameters()), next(other.parameters()))
    small = build_model("mlp:6,5", 4, 3, seed=7, init_scale=1e-3)
    torch.testing.assert_close(next(small.parameters()), 1e-3 * next(first.parameters()))
    assert [type(m).__name__ for m in first] == ["Linear", "Tanh", "Linear", "Tanh", "Linear"]
    assert len(build_model("linear", 4, 3)) == 1
    with pytest.raises(ValueError, match="init_scale"):
        build_model("mlp:3", 2, 1, init_scale=0.0)


# ------------------------------------------------------------------------------ optimizers


def test_make_optimizer_first_order_defaults() -> None:
    parameter = [torch.zeros(2, requires_grad=True)]
    adam = make_optimizer("adam", parameter)
    sgd = make_optimizer("sgd", parameter, lr=0.2, options={"momentum": 0.0})
    assert isinstance(adam, torch.optim.Adam) and adam.defaults["lr"] == 1e-3
    assert isinstance(sgd, torch.optim.SGD)
    assert (sgd.defaults["lr"], sgd.defaults["momentum"]) == (0.2, 0.0)
    assert make_optimizer("sgd", parameter).defaults["momentum"] == 0.9


@pytest.mark.parametrize(
    ("name", "keywords", "match"),
    [
        ("lbfgs", {}, "unknown optimizer 'lbfgs'"),
        ("adam", {"lr": -1.0}, "positive number"),
        ("adam", {"damping": 1.0}, "SFN optimizers only"),
        ("sgd", {"options": {"nesterov_typo": True}}, "has no option 'nesterov_typo'"),
        ("series-sfn", {"damping": -1.0}, "damping"),
        ("series-sfn", {"options": {"num_terms": 0}}, "cannot construct series-sfn"),
    ],
)
def test_make_optimizer_refuses_bad_settings(name, keywords, match) -> None:
    with pytest.raises(ValueError, match=match):
        make_optimizer(name, [torch.zeros(2, requires_grad=True)], **keywords)


def test_sfn_optimizers_are_built_with_their_options() -> None:
    pytest.importorskip("hvpseries.optim")
    parameter = [torch.zeros(2, requires_grad=True)]
    series = make_optimizer("series-sfn", parameter, damping=0.5, options={"num_terms": 10})
    assert type(series).__name__ == "SeriesSFN" and series.defaults["damping"] == 0.5
    fixed = make_optimizer("series-sfn", parameter, lr=0.1)  # a fixed rate, not adaptive
    assert (fixed.defaults["lr"], fixed.defaults["adaptive"]) == (0.1, False)
    krylov = make_optimizer("krylov-sfn", parameter, options={"maxiter": 5})
    assert type(krylov).__name__ == "KrylovSFN"
    assert type(make_optimizer("exact-sfn", parameter)).__name__ == "ExactSFN"


def test_missing_optim_module_is_reported(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "hvpseries.optim", None)
    with pytest.raises(MissingDependencyError, match=r"hvpseries\.optim"):
        make_optimizer("series-sfn", [torch.zeros(1, requires_grad=True)])


# ------------------------------------------------------------------------------ training


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
    batches = training._batches(50, 16, torch.Generator().manual_seed(0))
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
    original = training.train_one

    def failing(model, dataset, name, **keywords):
        if name == "sgd":
            message = "boom"
            raise RuntimeError(message)
        return original(model, dataset, name, **keywords)

    monkeypatch.setattr(training, "train_one", failing)
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
        init_scale=training.SADDLE_INIT_SCALE,
        dtype=torch.float64,
        progress=False,
    )
    exact, sgd = (run["history"]["train_loss"] for run in record["runs"])
    assert exact[-1] < 0.5
    assert sgd[-1] > 0.95


# ------------------------------------------------------------------------------ output


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
