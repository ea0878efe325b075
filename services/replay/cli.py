"""`billsync replay`: argument parsing and exit codes (2 bad input, 1 failure).

Stdout holds what a person reads (or JSON lines with --json); log lines go to stderr."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

_EPILOG = """\
Bounds: --to-offset is inclusive, --to-time exclusive; without an upper bound the replay
stops at the end offsets seen when it starts. Times are ISO 8601 (naive = UTC), a date, or
epoch milliseconds. The same offset bound applies to every partition unless --partition.
Bills are re-published on the replay topic with trigger REPLAY: live consumer groups are
never moved, and destinations update the invoice they already have instead of doubling it.
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "replay",
        help="re-publish a range of bills for routing (by offset or time)",
        description="Re-publish bills from bill-generated or bill-approved as ReplayRequests.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--topic", required=True, help="bill-generated or bill-approved")
    start = p.add_mutually_exclusive_group(required=True)
    start.add_argument("--from-offset", type=int, metavar="N")
    start.add_argument("--from-time", metavar="T")
    end = p.add_mutually_exclusive_group()
    end.add_argument("--to-offset", type=int, metavar="M", help="inclusive")
    end.add_argument("--to-time", metavar="U", help="exclusive")
    p.add_argument("--partition", type=int, metavar="P", help="only this partition")
    p.add_argument(
        "--account", action="append", metavar="A", help="only bills of this account (repeatable)"
    )
    p.add_argument(
        "--config", action="append", metavar="C", help="only these configurations (repeatable)"
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="publish nothing; show the configurations and existing invoices",
    )
    p.add_argument("--json", action="store_true", help="JSON lines instead of text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aiokafka.errors import KafkaError

    from services.replay.options import ReplayInputError, from_args
    from services.replay.runner import Replayer
    from shared.settings import get_settings

    try:
        opts = from_args(args)
        stats = asyncio.run(Replayer(get_settings(), opts).run())
    except ReplayInputError as exc:
        print(f"billsync replay: error: {exc}", file=sys.stderr)
        return 2
    except KafkaError as exc:
        print(
            f"billsync replay: failed: {type(exc).__name__} (is the broker reachable? "
            "KAFKA_BOOTSTRAP_SERVERS)",
            file=sys.stderr,
        )
        return 1
    if stats.read == 0 and not opts.json:
        print(
            f"nothing to replay: {stats.topic} holds no record in the range given "
            "(check --from/--to and --partition; `billsync replay --help` explains the bounds)"
        )
    return 0
