"""The ``hvpseries spectrum`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

from hvpseries._app._cli import main


@pytest.fixture
def matrix_file(tmp_path):
    rng = np.random.default_rng(0)
    eigenvalues = np.concatenate([np.linspace(-1.0, -0.1, 20), np.linspace(0.2, 3.0, 180)])
    q, _ = np.linalg.qr(rng.standard_normal((200, 200)))
    matrix = (q * eigenvalues) @ q.T
    matrix = 0.5 * (matrix + matrix.T)
    path = tmp_path / "a.mtx"
    scipy.io.mmwrite(path, sp.coo_matrix(matrix), symmetry="symmetric")
    return path, eigenvalues


def test_json_estimates_match_the_spectrum(matrix_file, capsys) -> None:
    path, eigenvalues = matrix_file
    code = main(["spectrum", str(path), "--k", "4", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0, summary
    ends = np.concatenate([eigenvalues[:2], eigenvalues[-2:]])
    np.testing.assert_allclose(summary["eigenvalues"], ends, rtol=1e-7)
    trace, error = summary["trace"], summary["trace_standard_error"]
    assert abs(trace - eigenvalues.sum()) <= 4 * error + 1e-8 * abs(eigenvalues.sum())
    log_abs_det = np.log(np.abs(eigenvalues)).sum()
    assert abs(summary["log_abs_det"] - log_abs_det) <= 4 * summary["log_abs_det_standard_error"]
    assert summary["matvecs"]["density"] > 0


def test_text_report_and_plot(tmp_path, capsys) -> None:
    pytest.importorskip("matplotlib")
    plot = tmp_path / "density.png"
    code = main(["spectrum", "helmholtz2d", "--grid", "20", "--k", "2", "--plot", str(plot)])
    out = capsys.readouterr().out
    assert code == 0, out
    for word in ("eigenvalues", "trace", "log|det|", "density", "SUCCESS"):
        assert word in out
    assert plot.stat().st_size > 0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--k", "0"], "--k must be"),
        (["--rtol", "-1"], "--rtol must be"),
        (["--plot", "density.unknown"], "--plot must end"),
    ],
)
def test_bad_input_is_refused_before_any_work(arguments, message, capsys) -> None:
    code = main(["spectrum", "helmholtz2d", "--grid", "10", *arguments])
    assert code == 2
    assert message in capsys.readouterr().err


def test_missing_matrix_file(capsys) -> None:
    assert main(["spectrum", "missing.mtx"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_model_hessian_from_a_training_configuration(capsys) -> None:
    torch = pytest.importorskip("torch")
    from hvpseries._app._datasets import load_dataset
    from hvpseries._app._models import build_model
    from hvpseries.nn import HessianOperator

    arguments = ["--dataset", "saddle", "--model", "mlp:3", "--k", "2", "--json"]
    code = main(["spectrum", *arguments])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0, summary
    # The same Hessian built directly: its extreme eigenvalues by a dense eigendecomposition.
    dataset = load_dataset("saddle", seed=0)
    model = build_model(
        "mlp:3", dataset.n_features, dataset.n_outputs, init_scale=1e-3, dtype=torch.float64
    )
    data = (torch.as_tensor(dataset.x_train), torch.as_tensor(dataset.y_train))
    operator = HessianOperator(model, torch.nn.functional.mse_loss, data)
    dense = operator @ torch.eye(operator.shape[0], dtype=torch.float64)
    exact = np.linalg.eigvalsh(0.5 * (dense + dense.T).numpy())
    np.testing.assert_allclose(summary["eigenvalues"], [exact[0], exact[-1]], rtol=1e-6)


def test_matrix_and_dataset_together_are_refused(capsys) -> None:
    pytest.importorskip("torch")
    assert main(["spectrum", "helmholtz2d", "--dataset", "saddle"]) == 2
    assert "not both" in capsys.readouterr().err
