"""What the subcommands of ``hvpseries`` share: registration, bad input and its report."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["InputError", "Subcommand", "add_subcommand", "report_error"]

# The exit status of a run refused for bad input (or a missing dependency).
INPUT_ERROR_STATUS = 2


class InputError(Exception):
    """A problem with the user's input or installation: one line on stderr, exit status 2."""


@dataclass(frozen=True)
class Subcommand:
    """A subcommand of ``hvpseries``: its name, its help texts, its options and its handler.

    ``add_arguments(parser)`` adds the options to the subcommand's parser; ``run(arguments)``
    runs the subcommand and returns its exit status. ``help`` is the line of ``hvpseries
    --help``; ``description``, ``epilog`` and ``formatter_class`` go to the parser.
    """

    name: str
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    epilog: str | None = None
    formatter_class: type[argparse.HelpFormatter] = argparse.HelpFormatter


def add_subcommand(commands: Any, subcommand: Subcommand) -> None:
    """Register ``subcommand`` on the subparsers object ``commands``."""
    parser = commands.add_parser(
        subcommand.name,
        help=subcommand.help,
        description=subcommand.description,
        epilog=subcommand.epilog,
        formatter_class=subcommand.formatter_class,
    )
    subcommand.add_arguments(parser)
    parser.set_defaults(handler=subcommand.run)


def report_error(command: str, error: object) -> int:
    """Print ``error`` as the one-line error of ``hvpseries command``; return the exit status."""
    print(f"hvpseries {command}: error: {error}", file=sys.stderr)
    return INPUT_ERROR_STATUS
