"""FilterSyntaxError: a parse error an operator can act on (position, expectation, excerpt)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["FilterSyntaxError", "line_and_column"]

_EXCERPT_RADIUS = 60  # characters shown either side of the error on long lines


def line_and_column(text: str, position: int) -> tuple[int, int]:
    """1-based (line, column) of the 0-based character offset ``position`` in ``text``."""
    line_start = text.rfind("\n", 0, position) + 1
    return text.count("\n", 0, position) + 1, position - line_start + 1


def _excerpt(text: str, position: int) -> str:
    """The error's line, indented, with a caret under ``position`` (long lines are cut)."""
    line_start = text.rfind("\n", 0, position) + 1
    line_end = text.find("\n", position)
    if line_end == -1:
        line_end = len(text)
    start = max(line_start, position - _EXCERPT_RADIUS)
    end = min(line_end, position + _EXCERPT_RADIUS)
    head = "..." if start > line_start else ""
    tail = "..." if end < line_end else ""
    shown = "".join(c if c.isprintable() or c == "\t" else " " for c in text[start:end])
    pad = "".join("\t" if c == "\t" else " " for c in shown[: position - start])
    return f"    {head}{shown}{tail}\n    {' ' * len(head)}{pad}^"


class FilterSyntaxError(ValueError):
    """An account filter expression could not be parsed.

    Attributes:
        source: the expression text.
        position: 0-based character offset of the error in ``source``.
        line, column: 1-based line and column of ``position``.
        expected: human-readable descriptions of what would have been valid there.
        problem: the short description, e.g. ``unexpected '=='``.
        hint: an optional suggestion (may be empty).
    """

    def __init__(
        self,
        source: str,
        position: int,
        problem: str,
        expected: Sequence[str] = (),
        hint: str = "",
    ) -> None:
        self.source = source
        self.position = max(0, min(position, len(source)))
        self.line, self.column = line_and_column(source, self.position)
        self.problem = problem
        self.expected: list[str] = list(expected)
        self.hint = hint
        super().__init__(self._message())

    def _message(self) -> str:
        msg = (
            f"account filter: {self.problem} at line {self.line}, column {self.column} "
            f"(position {self.position})"
        )
        if self.expected:
            msg += "; expected " + _join_or(self.expected)
        if self.hint:
            msg += f". Hint: {self.hint}"
        return msg + "\n" + _excerpt(self.source, self.position)

    def __reduce__(self) -> tuple[object, ...]:  # keep picklable (multiprocessing, caches)
        return (
            type(self),
            (self.source, self.position, self.problem, self.expected, self.hint),
        )


def _join_or(items: Sequence[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " or " + items[-1]
