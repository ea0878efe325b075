"""`billsync` command line: every service starts as `billsync <service>`; tools beside them.

Subcommands import their modules lazily so `billsync --help` stays fast."""

from __future__ import annotations

import argparse
import asyncio
import sys
from importlib.metadata import PackageNotFoundError, version

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
    parser.add_argument("--version", action="version", version=f"billsync {_version()}")
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


def _version() -> str:
    try:
        return version("billsync")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def main(argv: list[str] | None = None) -> None:
    # Tools print their results on stdout; their log lines go to stderr. A service started
    # from here configures its own logging (to stdout) again.
    configure_logging(get_settings().log_level, stream=sys.stderr)
    parser = build_parser()
    args = parser.parse_args(argv)
    sys.exit(_run(args))


def _run(args: argparse.Namespace) -> int:
    """Exit codes: 0 done, 1 failed, 2 refused input, 130 interrupted. Errors go to
    stderr as a sentence; an unexpected one is logged (one JSON line) by the excepthook."""
    from aiokafka.errors import KafkaError

    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except KafkaError as exc:
        print(
            f"billsync: error: Kafka: {type(exc).__name__} (is the broker at "
            f"{get_settings().kafka_bootstrap_servers} reachable? KAFKA_BOOTSTRAP_SERVERS)",
            file=sys.stderr,
        )
        return 1
    return code
