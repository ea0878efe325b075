"""Registers `billsync stripe-sink`."""

from __future__ import annotations

import argparse


def _run(_: argparse.Namespace) -> int:
    from services.stripe_sink.main import main

    main()
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sub.add_parser("stripe-sink", help="run the Stripe sink (STRIPE and STRIPE_TEST)").set_defaults(
        func=_run
    )
