"""Registers `billsync salesforce-sink`."""

from __future__ import annotations

import argparse


def _run(_: argparse.Namespace) -> int:
    from services.salesforce_sink.main import main

    main()
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sub.add_parser(
        "salesforce-sink", help="run the Salesforce sink (SALESFORCE, EVENT and SCHEDULE)"
    ).set_defaults(func=_run)
