"""`billsync webhooks`: registered by services.monitor.cli (the extension list is fixed)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "webhooks", help="serve inbound Stripe webhooks (POST /webhooks/stripe/{configId})"
    )
    parser.set_defaults(func=_run)


def _run(_: argparse.Namespace) -> int:
    from services.webhooks.main import main

    main()
    return 0
