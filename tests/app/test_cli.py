"""The hvpseries command line: info and help."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import hvpseries as hs
from hvpseries._app._cli import build_parser, main


def test_info_lists_version_and_backends(capsys) -> None:
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"hvpseries {hs.__version__}" in out
    assert "numpy" in out and "torch" in out and "cupy" in out


def test_info_json(capsys) -> None:
    assert main(["info", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["hvpseries"] == hs.__version__
    assert report["backends"]["numpy"]["available"] is True
    assert report["backends"]["numpy"]["devices"] == ["cpu"]


def test_info_names_the_distributed_backends(capsys) -> None:
    torch = pytest.importorskip("torch")
    assert main(["info", "--json"]) == 0
    backends = json.loads(capsys.readouterr().out)["backends"]["torch"]["distributed"]
    assert ("gloo" in backends) == torch.distributed.is_gloo_available()
    assert main(["info"]) == 0
    assert "torch.distributed: " in capsys.readouterr().out


def test_every_subcommand_has_help(capsys) -> None:
    parser = build_parser()
    subcommands = parser._subparsers._group_actions[0].choices
    assert "info" in subcommands
    for name in subcommands:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        assert "usage: hvpseries" in capsys.readouterr().out


def test_missing_subcommand_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert "required" in capsys.readouterr().err


def test_module_entry_point_runs() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "hvpseries", "--version"], capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip() == f"hvpseries {hs.__version__}"
