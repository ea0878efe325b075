"""The filter AST produced by the parser and consumed by the compiler (evaluate.py)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal as TypingLiteral

__all__ = [
    "And",
    "Comparison",
    "Membership",
    "Node",
    "Not",
    "Or",
    "TextMatch",
    "Value",
]

LiteralValue = str | Decimal | bool | None
CompareOp = TypingLiteral["==", "!=", "<", "<=", ">", ">="]
TextOp = TypingLiteral["contains", "startswith", "endswith"]


@dataclass(frozen=True, slots=True)
class Value:
    """A literal: str, Decimal (numbers), bool or None; ``text`` is its source spelling."""

    value: LiteralValue
    text: str


@dataclass(frozen=True, slots=True)
class Comparison:
    path: tuple[str, ...]
    op: CompareOp
    operand: Value
    position: int
    depth: int = 1


@dataclass(frozen=True, slots=True)
class Membership:
    """``path IN (values...)``; NOT IN is ``Not(Membership(...))``."""

    path: tuple[str, ...]
    operands: tuple[Value, ...]
    position: int
    depth: int = 1


@dataclass(frozen=True, slots=True)
class TextMatch:
    """``path CONTAINS | STARTSWITH | ENDSWITH value``."""

    path: tuple[str, ...]
    op: TextOp
    operand: Value
    position: int
    depth: int = 1


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node
    position: int
    depth: int


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Node, ...]
    position: int
    depth: int


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Node, ...]
    position: int
    depth: int


Node = Comparison | Membership | TextMatch | Not | And | Or
