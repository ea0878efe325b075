"""``python -m fakes.stripe``: run the fake for the local development stack."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

from .core import livemode_of
from .fake import FakeStripe


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fakes.stripe", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--keys", default="sk_test_123", help="comma-separated API keys")
    parser.add_argument("--customers", default="", help="comma-separated customer ids to seed")
    parser.add_argument(
        "--accounts",
        default="",
        help="comma-separated connected accounts to seed the customers into too",
    )
    parser.add_argument("--currency", default=None, help="currency of the seeded customers")
    parser.add_argument("--webhook-url", default=None)
    parser.add_argument("--webhook-secret", default=None)
    parser.add_argument("--seed", type=int, default=0, help="fault injection RNG seed")
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--no-rate-limits", action="store_true")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(list(argv))


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def build(args: argparse.Namespace) -> FakeStripe:
    keys = _split(args.keys)
    fake = FakeStripe(
        keys,
        rate_limits={"enabled": not args.no_rate_limits},
        faults={"seed": args.seed, "error_rate": args.error_rate, "latency_ms": args.latency_ms},
        webhooks={"url": args.webhook_url, "secret": args.webhook_secret},
    )
    modes = sorted({livemode_of(k) for k in keys})
    for account in [None, *_split(args.accounts)]:
        for livemode in modes:
            for customer in _split(args.customers):
                fake.seed_customer(
                    customer, currency=args.currency, account=account, livemode=livemode
                )
    return fake


async def serve(fake: FakeStripe, host: str, port: int) -> None:
    url = await fake.start(host, port)
    print(url, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await fake.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=args.log_level.upper())
    asyncio.run(serve(build(args), args.host, args.port))
    return 0
