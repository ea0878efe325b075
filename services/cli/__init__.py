"""`billsync` command line: every service starts as `billsync <service>`; tools beside them.

Subcommands import their modules lazily so `billsync --help` stays fast."""

from __future__ import annotations

import argparse
import asyncio
import sys

from shared.logging import configure_logging
from shared.settings import get_settings


def _add_services(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sub.add_parser("router", help="run the router service").set_defaults(func=_run_router)


def _run_router(_: argparse.Namespace) -> int:
    from services.router.main import main as router_main

    router_main()
    return 0


def _topics(args: argparse.Namespace) -> int:
    from shared.kafka.topics import ensure_topics, topic_specs

    settings = get_settings()
    created = asyncio.run(ensure_topics(settings))
    for spec in topic_specs(settings):
        state = "created" if spec.name in created else "exists"
        print(f"{spec.name:32} partitions={spec.partitions:<3} cleanup={spec.policy:14} {state}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="billsync", description="Route usage-based bills from Kafka to billing providers."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_services(sub)
    topics = sub.add_parser("topics", help="manage Kafka topics")
    topics_sub = topics.add_subparsers(dest="topics_command", required=True)
    topics_sub.add_parser("create", help="create missing topics (idempotent)").set_defaults(
        func=_topics
    )
    from services.cli import configs, extensions, sample

    configs.register(sub)
    sample.register(sub)
    for register in extensions.REGISTERS:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    configure_logging(get_settings().log_level)
    parser = build_parser()
    args = parser.parse_args(argv)
    sys.exit(args.func(args))
