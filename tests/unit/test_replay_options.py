"""Replay input validation: clear errors that say what to fix."""

from __future__ import annotations

import argparse

import pytest

from services.replay.cli import register
from services.replay.options import ReplayInputError, from_args, parse_time


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["replay", *argv])


def test_valid_options() -> None:
    opts = from_args(
        _parse(
            "--topic",
            "bill-approved",
            "--from-time",
            "2026-11-01",
            "--to-time",
            "2026-11-02T00:00:00Z",
            "--config",
            "a",
            "--config",
            "b",
            "--account",
            "acc-1",
            "--partition",
            "2",
        )
    )
    assert opts.topic_field == "bill_approved" and opts.partition == 2
    assert opts.config_ids == ("a", "b") and opts.accounts == frozenset({"acc-1"})
    assert opts.to_time_ms is not None and opts.from_time_ms is not None
    assert opts.to_time_ms - opts.from_time_ms == 86_400_000


def test_time_formats() -> None:
    assert parse_time("1700000000000", "--from-time") == 1_700_000_000_000
    assert parse_time("2023-11-14T22:13:20", "x") == parse_time("2023-11-14T22:13:20Z", "x")
    assert parse_time("2023-11-14T23:13:20+01:00", "x") == 1_700_000_000_000


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--topic", "bills", "--from-offset", "0"], "unknown topic"),
        (["--topic", "bill-generated", "--from-time", "last tuesday"], "bad --from-time"),
        (
            ["--topic", "bill-generated", "--from-offset", "9", "--to-offset", "3"],
            "after --to-offset",
        ),
        (
            ["--topic", "bill-generated", "--from-time", "2026-02-01", "--to-time", "2026-01-01"],
            "before --to-time",
        ),
        (["--topic", "bill-generated", "--from-offset", "-1"], "0 or more"),
    ],
)
def test_bad_input(argv: list[str], message: str) -> None:
    with pytest.raises(ReplayInputError, match=message):
        from_args(_parse(*argv))
