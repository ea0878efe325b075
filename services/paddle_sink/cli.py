"""Registers `billsync paddle-sink`."""

from __future__ import annotations

import argparse


def _run(_: argparse.Namespace) -> int:
    from services.paddle_sink.main import main

    main()
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sub.add_parser(
        "paddle-sink", help="run the Paddle sink (PADDLE and PADDLE_SANDBOX)"
    ).set_defaults(func=_run)
