"""Registers `billsync xero-sink`."""

from __future__ import annotations

import argparse


def _run(_: argparse.Namespace) -> int:
    from services.xero_sink.main import main

    main()
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sub.add_parser("xero-sink", help="run the Xero sink (XERO configurations)").set_defaults(
        func=_run
    )
