"""Reading the YAML/JSON files operators hand to the CLI (configurations, credentials).

A credentials file holds secrets, so a problem is reported by line and column only: never
the text of the line (PyYAML's own message quotes it) and never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class FileProblem(ValueError):
    pass


def load_yaml(path: Path) -> Any:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise FileProblem(f"{path}: cannot read: {reason}") from None
    try:
        return yaml.safe_load(text)  # YAML is a superset of JSON
    except yaml.YAMLError as exc:
        raise FileProblem(f"{path}: {_where(exc)}") from None


def _where(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "cannot be parsed"
    if mark is None:
        return f"not valid YAML: {problem}"
    return f"not valid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}"
