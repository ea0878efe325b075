"""Helpers shared by the API-backed CLI commands: the client, output, error exits."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from services.cli.output import print_json, print_table
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
    """Print an API refusal readably and exit 1 (2 for a refused request body)."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except ControlError as exc:
            print(exc.describe())
            return 2 if exc.code == "validation_error" else 1

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
    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict):
        raise ControlError(0, "validation_error", f"{path}: expected one object", [])
    return data


def json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")
