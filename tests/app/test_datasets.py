"""Datasets behind ``hvpseries train``: built-in, synthetic and CSV."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training needs torch")

from hvpseries._app._datasets import load_dataset  # noqa: E402
from hvpseries._app._dependencies import MissingDependencyError  # noqa: E402
from hvpseries._app._models import build_model  # noqa: E402


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
