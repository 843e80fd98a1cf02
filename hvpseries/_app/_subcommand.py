"""What the subcommands of ``hvpseries`` share: registration, bad input and its report."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["InputError", "add_subcommand", "report_error"]

# The exit status of a run refused for bad input (or a missing dependency).
INPUT_ERROR_STATUS = 2


class InputError(Exception):
    """A problem with the user's input or installation: one line on stderr, exit status 2."""


def add_subcommand(
    commands: Any,
    name: str,
    handler: Callable[[argparse.Namespace], int],
    **options: Any,
) -> argparse.ArgumentParser:
    """Register the subcommand ``name`` on the subparsers object ``commands``; return its parser.

    ``handler(arguments)`` runs the subcommand and returns its exit status; ``options``
    (``help``, ``description``, ...) go to ``add_parser``.
    """
    parser = commands.add_parser(name, **options)
    parser.set_defaults(handler=handler)
    return parser


def report_error(command: str, error: object) -> int:
    """Print ``error`` as the one-line error of ``hvpseries command``; return the exit status."""
    print(f"hvpseries {command}: error: {error}", file=sys.stderr)
    return INPUT_ERROR_STATUS
