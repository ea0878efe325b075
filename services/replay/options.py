"""The replay request as typed by an operator, validated with messages that say what to fix."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import UTC, date, datetime

TOPICS = {"bill-generated": "bill_generated", "bill-approved": "bill_approved"}


class ReplayInputError(ValueError):
    """Bad input: the message tells the operator what to change."""


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    topic_field: str  # a TopicNames field: bill_generated or bill_approved
    from_offset: int | None = None
    from_time_ms: int | None = None
    to_offset: int | None = None  # inclusive
    to_time_ms: int | None = None  # exclusive
    partition: int | None = None
    accounts: frozenset[str] = frozenset()
    config_ids: tuple[str, ...] = ()
    dry_run: bool = False
    json: bool = False


def parse_time(value: str, flag: str) -> int:
    """ISO 8601 (a naive time is UTC; a date is its midnight UTC) or epoch milliseconds."""
    text = value.strip()
    try:
        if text.isdigit():
            return int(text)
        if len(text) == 10:
            d = date.fromisoformat(text)
            return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000)
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ReplayInputError(
            f"bad {flag} {value!r}: use ISO 8601 such as 2026-11-01T00:00:00Z or "
            f"2026-11-01, or epoch milliseconds"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def topic_field(name: str) -> str:
    field = TOPICS.get(name) or (name if name in TOPICS.values() else None)
    if field is None:
        raise ReplayInputError(
            f"unknown topic {name!r}: use bill-generated or bill-approved (the logical name; "
            f"the prefix and real names come from the settings)"
        )
    return field


def from_args(args: argparse.Namespace) -> ReplayOptions:
    opts = ReplayOptions(
        topic_field=topic_field(args.topic),
        from_offset=args.from_offset,
        from_time_ms=parse_time(args.from_time, "--from-time") if args.from_time else None,
        to_offset=args.to_offset,
        to_time_ms=parse_time(args.to_time, "--to-time") if args.to_time else None,
        partition=args.partition,
        accounts=frozenset(args.account or ()),
        config_ids=tuple(dict.fromkeys(args.config or ())),
        dry_run=args.dry_run,
        json=args.json,
    )
    validate(opts)
    return opts


def validate(opts: ReplayOptions) -> None:
    if (opts.from_offset is None) == (opts.from_time_ms is None):
        raise ReplayInputError("give exactly one of --from-offset N or --from-time T")
    if opts.to_offset is not None and opts.to_time_ms is not None:
        raise ReplayInputError("give at most one of --to-offset M or --to-time U")
    for flag, value in (
        ("--from-offset", opts.from_offset),
        ("--to-offset", opts.to_offset),
        ("--partition", opts.partition),
    ):
        if value is not None and value < 0:
            raise ReplayInputError(f"{flag} must be 0 or more, got {value}")
    if (
        opts.from_offset is not None
        and opts.to_offset is not None
        and opts.from_offset > opts.to_offset
    ):
        raise ReplayInputError(
            f"--from-offset {opts.from_offset} is after --to-offset {opts.to_offset} "
            f"(--to-offset is inclusive): swap them"
        )
    if (
        opts.from_time_ms is not None
        and opts.to_time_ms is not None
        and opts.from_time_ms >= opts.to_time_ms
    ):
        raise ReplayInputError("--from-time must be before --to-time (--to-time is exclusive)")
