"""``hvpseries train`` and ``hvpseries demo``: smoke runs, output files and bad arguments."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="hvpseries train needs torch")

from hvpseries._app._cli import main
from hvpseries._app._train_command import parse_lr, parse_options


def run(capsys, *arguments: str) -> tuple[int, str, str]:
    status = main(list(arguments))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


TINY = ("--dataset", "saddle", "--model", "mlp:3", "--epochs", "1", "--batch-size", "250")


def test_train_writes_record_and_plot(capsys, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    out, plot = tmp_path / "run.json", tmp_path / "curves.png"
    status, stdout, stderr = run(
        capsys, "train", *TINY, "--optimizer", "adam,sgd", "--out", str(out), "--plot", str(plot)
    )
    assert status == 0, stderr
    assert "optimizer" in stdout and "adam" in stdout and "sgd" in stdout
    assert "saddle: 750 train / 250 test samples" in stdout
    record = json.loads(out.read_text())
    assert [r["optimizer"] for r in record["runs"]] == ["adam", "sgd"]
    assert record["config"]["init_scale"] == 1e-3  # the saddle problem starts at the saddle
    assert record["arguments"]["optimizer"] == "adam,sgd"
    assert record["runs"][0]["history"]["epoch"] == [0, 1]
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_train_quiet_prints_nothing(capsys) -> None:
    status, stdout, stderr = run(capsys, "train", *TINY, "--optimizer", "sgd", "--quiet")
    assert (status, stdout, stderr) == (0, "", "")


def test_train_sfn_smoke(capsys, tmp_path) -> None:
    pytest.importorskip("hvpseries.optim")
    out = tmp_path / "run.json"
    status, _, stderr = run(
        capsys,
        "train",
        *TINY,
        "--optimizer",
        "series-sfn,krylov-sfn,exact-sfn",
        "--option",
        "krylov-sfn.maxiter=8",
        "--option",
        "series-sfn.num_terms=5",
        "--damping",
        "0.5",
        "--dtype",
        "float64",
        "--threads",
        "1",
        "--quiet",
        "--out",
        str(out),
    )
    assert status == 0, stderr
    runs = json.loads(out.read_text())["runs"]
    assert [r["status"] for r in runs] == ["completed"] * 3
    assert runs[0]["history"]["hvp"][-1] == 3 * 2 * (5 - 1)  # 3 steps of 5 terms
    assert all(r["hyperparameters"]["damping"] == 0.5 for r in runs)


def test_train_csv_classification(capsys, tmp_path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("x1,x2,y\n" + "\n".join(f"{i % 7},{i % 5},{i % 2}" for i in range(40)))
    status, stdout, stderr = run(
        capsys, "train", "--dataset", f"csv:{path}", "--model", "linear", "--optimizer", "adam",
        "--epochs", "2", "--lr", "0.1",
    )  # fmt: skip
    assert status == 0, stderr
    assert "classification, 2 classes" in stdout and "test acc." in stdout


def test_train_reports_a_diverged_run(capsys) -> None:
    status, _, stderr = run(
        capsys, "train", "--dataset", "saddle", "--model", "mlp:3", "--optimizer", "sgd",
        "--epochs", "30", "--init-scale", "1", "--lr", "1e5", "--quiet",
    )  # fmt: skip
    assert status == 1
    assert "sgd diverged" in stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--dataset", "mnist"), "unknown dataset 'mnist'"),
        (("--dataset", "csv:/no/such.csv"), "does not exist"),
        (("--optimizer", "lbfgs"), "unknown optimizer 'lbfgs'"),
        (("--optimizer", "adam,adam"), "adam more than once"),
        (("--model", "cnn:3"), "unknown model 'cnn:3'"),
        (("--epochs", "0"), "--epochs must be >= 1"),
        (("--batch-size", "-1"), "--batch-size must be >= 1"),
        (("--lr", "0.1,0.2,0.3", "--optimizer", "adam,sgd"), "3 values for 2 optimizers"),
        (("--lr", "-1"), "--lr must be positive"),
        (("--lr", "fast"), "not a number"),
        (("--lr", "adam=0.1", "--optimizer", "sgd"), "not among the optimizers"),
        (("--optimizer", "sgd", "--damping", "1"), "SFN optimizers only"),
        (("--damping", "-1"), "--damping must be finite and >= 0"),
        (("--option", "sgd.momentum"), "OPTIMIZER.KEY=VALUE"),
        (("--optimizer", "sgd", "--option", "adam.lr=1"), "not among the optimizers"),
        (("--optimizer", "sgd", "--option", "sgd.nesterov_typo=1"), "no option 'nesterov_typo'"),
        (("--init-scale", "0"), "--init-scale must be positive"),
        (("--test-fraction", "1.5"), "--test-fraction must be in (0, 1)"),
        (("--out", "/no/such/folder/run.json"), "does not exist"),
        (("--threads", "0"), "--threads must be >= 1"),
        (("--device", "tpu:0"), "--device"),
        (("--seconds", "0"), "--seconds must be finite and > 0, got 0.0"),
        (("--seconds", "-2"), "--seconds must be finite and > 0, got -2.0"),
        (("--seconds", "nan"), "--seconds must be finite and > 0, got nan"),
        (("--seconds", "inf"), "--seconds must be finite and > 0, got inf"),
        (("--seconds", "1", "--time-points", "0"), "--time-points must be from 1 to 10000"),
        (("--seconds", "1", "--time-points", "10001"), "--time-points must be from 1 to 10000"),
        (("--time-points", "5"), "--time-points needs --seconds"),
    ],
)
def test_train_bad_arguments_exit_2(capsys, arguments, message) -> None:
    status, stdout, stderr = run(capsys, "train", *TINY, "--optimizer", "sgd", *arguments)
    assert status == 2
    assert stderr.startswith("hvpseries train: error: ")
    assert message in stderr
    assert stdout == ""


@pytest.mark.parametrize(
    "arguments",
    [("--epochs", "many"), ("--dtype", "float16"), ("--bogus",), ("--seconds", "soon")],
)
def test_train_unparsable_arguments_exit_2(capsys, arguments) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", *arguments])
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    assert "usage: hvpseries" in stderr and "error:" in stderr


def test_train_without_scikit_learn_names_the_extra(capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    status, _, stderr = run(capsys, "train", "--dataset", "digits", "--optimizer", "adam")
    assert status == 2
    assert "pip install 'hvpseries[examples]'" in stderr


def test_train_plot_without_matplotlib_fails_before_training(capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    status, stdout, stderr = run(capsys, "train", *TINY, "--plot", "curves.png")
    assert status == 2 and stdout == ""
    assert "pip install 'hvpseries[plot]'" in stderr


@pytest.mark.parametrize(
    ("name", "found"),
    [("curves.unknown", "has the extension '.unknown'"), ("curves", "has no extension")],
)
def test_train_refuses_a_plot_format_before_training(capsys, tmp_path, name, found) -> None:
    pytest.importorskip("matplotlib")
    plot = str(tmp_path / name)
    status, stdout, stderr = run(capsys, "train", *TINY, "--optimizer", "sgd", "--plot", plot)
    assert status == 2 and stdout == ""
    assert stderr.startswith(f"hvpseries train: error: --plot {plot!r} {found}")
    assert "matplotlib cannot write; use one of" in stderr and ".png" in stderr
    assert not any(tmp_path.iterdir())


def test_train_refuses_an_out_folder_before_training(capsys, tmp_path) -> None:
    status, stdout, stderr = run(
        capsys, "train", *TINY, "--optimizer", "sgd", "--out", str(tmp_path)
    )
    assert status == 2 and stdout == ""
    assert f"--out {str(tmp_path)!r} is a folder; give the name of a file" in stderr


def test_train_refuses_an_unwritable_out_before_training(capsys, monkeypatch, tmp_path) -> None:
    access = os.access

    def no_writing_in_tmp_path(path, mode, *args, **kwargs):
        if mode & os.W_OK and Path(path) == tmp_path:
            return False
        return access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", no_writing_in_tmp_path)
    out = str(tmp_path / "run.json")
    status, stdout, stderr = run(capsys, "train", *TINY, "--optimizer", "sgd", "--out", out)
    assert status == 2 and stdout == ""
    assert f"--out {out!r}: no permission to write it" in stderr
    assert not any(tmp_path.iterdir())


def test_train_with_a_time_budget(capsys, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    out, plot = tmp_path / "run.json", tmp_path / "curves.png"
    status, stdout, stderr = run(
        capsys, "train", "--dataset", "saddle", "--model", "mlp:3", "--optimizer", "adam,sgd",
        "--seconds", "0.2", "--time-points", "4", "--threads", "1", "--out", str(out),
        "--plot", str(plot),
    )  # fmt: skip
    assert status == 0, stderr
    assert "0.2 s of optimizer time each (losses at 4 time marks), batch 128" in stdout
    assert "train loss at optimizer time" in stdout and "x fastest" in stdout
    assert (
        "At equal optimizer time (0.2 s each)" in stdout and "Epochs completed in 0.2 s" in stdout
    )
    record = json.loads(out.read_text())
    assert record["config"]["budget"] == {
        "seconds": 0.2,
        "time_points": 4,
        "time_marks": pytest.approx([0.05, 0.1, 0.15, 0.2]),
    }
    assert record["config"]["epochs"] is None
    assert record["arguments"]["seconds"] == 0.2 and record["arguments"]["time_points"] == 4
    for entry in record["runs"]:
        assert entry["time_history"]["time_mark"] == [
            0.0,
            *record["config"]["budget"]["time_marks"],
        ]
        assert entry["end"]["wall_time"] >= 0.2
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_train_time_budget_with_an_epoch_limit(capsys, tmp_path) -> None:
    out = tmp_path / "run.json"
    status, stdout, stderr = run(
        capsys, "train", *TINY, "--optimizer", "sgd", "--seconds", "1000", "--out", str(out)
    )
    assert status == 0, stderr
    assert "1000 s of optimizer time each, at most 1 epoch (losses at 20 time marks)" in stdout
    assert "sgd: the epoch limit (1) ended the run after" in stdout
    record = json.loads(out.read_text())
    assert record["config"]["epochs"] == 1
    assert record["runs"][0]["time_history"]["time_mark"] == [0.0]
    assert record["runs"][0]["history"]["epoch"] == [0, 1]


def test_parse_lr_forms() -> None:
    names = ["adam", "sgd"]
    assert parse_lr(None, names) == {}
    assert parse_lr("0.1", names) == {"adam": 0.1, "sgd": 0.1}
    assert parse_lr("0.1,0.2", names) == {"adam": 0.1, "sgd": 0.2}
    assert parse_lr("sgd=0.3", names) == {"sgd": 0.3}


def test_parse_options_literals() -> None:
    options = parse_options(
        ["krylov-sfn.maxiter=20", "krylov-sfn.method=lanczos", "series-sfn.acceleration=None"],
        ["krylov-sfn", "series-sfn"],
    )
    assert options == {
        "krylov-sfn": {"maxiter": 20, "method": "lanczos"},
        "series-sfn": {"acceleration": None},
    }


def test_parse_options_reads_infinities_as_floats() -> None:
    # lazy-sfn.stale_ratio=-inf (schedule-only refreshes) reached LazySFN as the string '-inf'
    options = parse_options(
        ["lazy-sfn.stale_ratio=-inf", "lazy-sfn.damping_max=inf", "lazy-sfn.method=info"],
        ["lazy-sfn"],
    )
    assert options["lazy-sfn"]["stale_ratio"] == -math.inf
    assert options["lazy-sfn"]["damping_max"] == math.inf
    assert options["lazy-sfn"]["method"] == "info"


# ------------------------------------------------------------------------------ demo


def test_demo_runs_both_parts(capsys, tmp_path) -> None:
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    pytest.importorskip("hvpseries.optim")
    status, stdout, stderr = run(
        capsys, "demo", "--grid", "8", "--seconds", "0.3", "--out-dir", str(tmp_path), "--quiet",
        "--threads", "1",
    )  # fmt: skip
    assert status == 0, stdout + stderr
    assert "Part 1" in stdout and "lanczos" in stdout and "series + Wynn" in stdout
    assert "Part 2" in stdout and "series-sfn" in stdout and "krylov-sfn" in stdout
    assert "for 0.3 s of optimizer time each" in stdout
    assert "train loss at optimizer time" in stdout
    assert "At equal optimizer time (0.3 s each), " in stdout
    assert "Epochs completed in 0.3 s: adam " in stdout
    assert "skipped" not in stdout
    record = json.loads((tmp_path / "demo_training.json").read_text())
    names = [r["optimizer"] for r in record["runs"]]
    assert names == ["series-sfn", "krylov-sfn", "lazy-sfn", "adam"]
    assert record["dataset"]["name"] == "digits"
    assert record["config"]["budget"]["seconds"] == 0.3
    assert all(len(r["time_history"]["time_mark"]) == 21 for r in record["runs"])
    assert (tmp_path / "demo_training.png").exists()


def test_demo_degrades_when_components_are_missing(capsys, monkeypatch, tmp_path) -> None:
    for module in ("hvpseries.series", "sklearn.datasets", "matplotlib", "hvpseries.optim"):
        monkeypatch.setitem(sys.modules, module, None)
    status, stdout, _ = run(
        capsys, "demo", "--seconds", "0.1", "--out-dir", str(tmp_path), "--quiet"
    )
    assert status == 1
    assert "Part 1 (|A|^-1 b): skipped" in stdout and "hvpseries.series" in stdout
    assert "hvpseries[examples]" in stdout and "synthetic saddle problem instead" in stdout
    assert "series-sfn left out" in stdout and "hvpseries.optim" in stdout
    assert "plot skipped" in stdout and "hvpseries[plot]" in stdout
    record = json.loads((tmp_path / "demo_training.json").read_text())
    assert [r["optimizer"] for r in record["runs"]] == ["adam"]


def test_demo_bad_arguments_exit_2(capsys, tmp_path) -> None:
    status, _, stderr = run(
        capsys, "demo", "--grid", "2", "--epochs", "0", "--seconds", "-1",
        "--out-dir", str(tmp_path / "missing"),
    )  # fmt: skip
    assert status == 2
    assert "--grid must be >= 4" in stderr and "--epochs must be >= 1" in stderr
    assert "--seconds must be finite and > 0, got -1.0" in stderr
    assert "is not an existing folder" in stderr
