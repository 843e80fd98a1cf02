"""The ``hvpseries`` command line."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from typing import Any

from ._subcommand import Subcommand, add_subcommand

__all__ = ["main"]


def _backend_report() -> dict[str, dict[str, Any]]:
    """Which array libraries import, their versions and the devices they see."""
    report: dict[str, dict[str, Any]] = {}
    for name in ("numpy", "scipy", "array_api_compat", "torch", "cupy", "array_api_strict"):
        try:
            module = importlib.import_module(name)
        except Exception as error:  # an optional backend may fail in many ways (drivers, ABI)
            report[name] = {"available": False, "reason": f"{type(error).__name__}: {error}"}
            continue
        entry: dict[str, Any] = {"available": True, "version": getattr(module, "__version__", "?")}
        entry["devices"] = _devices(name, module)
        if name == "torch":
            entry["distributed"] = _distributed_backends(module)
        report[name] = entry
    return report


def _distributed_backends(torch: Any) -> list[str]:
    """Return the ``torch.distributed`` backends this torch build offers (data parallelism)."""
    dist = torch.distributed
    if not dist.is_available():
        return []
    checks = {
        "gloo": dist.is_gloo_available,
        "nccl": dist.is_nccl_available,
        "mpi": dist.is_mpi_available,
    }
    return [name for name, available in checks.items() if available()]


def _devices(name: str, module: Any) -> list[str]:
    if name == "torch":
        devices = ["cpu"]
        if module.cuda.is_available():
            devices += [
                f"cuda:{i} ({module.cuda.get_device_name(i)})"
                for i in range(module.cuda.device_count())
            ]
        return devices
    if name == "cupy":
        try:
            count = module.cuda.runtime.getDeviceCount()
        except Exception as error:  # no driver or no device
            return [f"none ({type(error).__name__})"]
        return [f"cuda:{i}" for i in range(count)]
    if name in ("numpy", "array_api_strict"):
        return ["cpu"]
    return []


def _info(arguments: argparse.Namespace) -> int:
    from .. import __version__

    report = {"hvpseries": __version__, "python": sys.version.split()[0]}
    backends = _backend_report()
    if arguments.json:
        print(json.dumps({**report, "backends": backends}, indent=2))
        return 0
    print(f"hvpseries {__version__} (Python {report['python']})")
    for name, entry in backends.items():
        if entry["available"]:
            devices = ", ".join(entry["devices"])
            suffix = f"  devices: {devices}" if devices else ""
            if "distributed" in entry:
                backends_text = ", ".join(entry["distributed"]) or "none"
                suffix += f"; torch.distributed: {backends_text}"
            print(f"  {name:<17} {entry['version']:<12}{suffix}")
        else:
            print(f"  {name:<17} not available ({entry['reason']})")
    return 0


def _add_info_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``hvpseries info`` to its ``parser``."""
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


INFO = Subcommand(
    "info",
    help="show the version and which array backends and devices are available",
    description="Show the hvpseries version, the array libraries it can use and their devices.",
    add_arguments=_add_info_arguments,
    run=_info,
)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``hvpseries`` command."""
    parser = argparse.ArgumentParser(
        prog="hvpseries",
        description="Matrix-free f(|A|) b and saddle-free Newton from matrix-vector products.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"hvpseries {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    from ._demo_command import DEMO
    from ._solve_command import SOLVE
    from ._spectrum_command import SPECTRUM
    from ._train_command import TRAIN

    for subcommand in (INFO, SOLVE, SPECTRUM, TRAIN, DEMO):
        add_subcommand(commands, subcommand)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``hvpseries`` command line; return the exit status."""
    arguments = build_parser().parse_args(argv)
    return arguments.handler(arguments)


if __name__ == "__main__":
    sys.exit(main())
