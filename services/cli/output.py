"""Readable tables for people, JSON for scripts. Results go to stdout; errors and notes
about the output (a value cut short) go to stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

MAX_CELL = 60
CUT = "…"


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    if not rows:
        print("(none)")
        return
    cells = [[_cell(row.get(col)) for col in columns] for row in rows]
    widths = [max(len(col), *(len(r[i]) for r in cells)) for i, col in enumerate(columns)]
    print("  ".join(col.upper().ljust(w) for col, w in zip(columns, widths, strict=True)))
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    cut = [col for i, col in enumerate(columns) if any(r[i].endswith(CUT) for r in cells)]
    if cut:
        error(
            f"note: values ending in {CUT} were cut to {MAX_CELL} characters "
            f"({', '.join(cut)}); --json prints them whole"
        )


def error(message: str) -> None:
    print(message, file=sys.stderr)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) or "-"
    text = " ".join(str(value).split())  # one line per row, whatever the value holds
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + CUT
