"""Helpers shared by the API-backed CLI commands: the client, output, error exits."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from services.cli.files import FileProblem, load_yaml
from services.cli.output import error, print_json, print_table
from services.control.client import ControlClient, ControlError

Command = Callable[[argparse.Namespace], int]


def client() -> ControlClient:
    found = ControlClient.from_env()
    if found is None:
        raise ControlError(
            0, "not_configured", "set BILLSYNC_CONTROL_URL and BILLSYNC_CONTROL_TOKEN", []
        )
    return found


def handled(command: Callable[[argparse.Namespace], int]) -> Command:
    """Print an API refusal (or an unreadable file) on stderr and exit 1 (2 for input
    refused: a request body or a file)."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except ControlError as exc:
            error(exc.describe())
            return 2 if exc.code == "validation_error" else 1
        except FileProblem as exc:
            error(f"error: {exc}")
            return 2

    return run


def show(args: argparse.Namespace, data: Any, columns: Sequence[str]) -> None:
    if getattr(args, "json", False):
        print_json(data)
    elif isinstance(data, list):
        print_table(data, columns)
    else:
        print_table([data], columns)


def read_body(path: str) -> dict[str, Any]:
    """A YAML or JSON object from a file (secrets stay out of the shell history)."""
    data = load_yaml(Path(path))
    if not isinstance(data, dict):
        raise ControlError(0, "validation_error", f"{path}: expected one object", [])
    return data


def json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")
