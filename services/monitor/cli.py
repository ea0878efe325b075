"""`billsync monitor` (and `billsync webhooks`, which has no slot of its own in the
CLI's extension list)."""

from __future__ import annotations

import argparse
from typing import Any

from services.webhooks.cli import register as register_webhooks


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "monitor",
        help="count successive errors per configuration, auto-disable and notify",
    )
    parser.set_defaults(func=_run)
    register_webhooks(subparsers)


def _run(_: argparse.Namespace) -> int:
    from services.monitor.main import main

    main()
    return 0
