"""``python -m fakes.stripe``: run the fake for the local development stack."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from fakes.common import serve

from .core import livemode_of
from .fake import FakeStripe


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = serve.parser("python -m fakes.stripe", __doc__, 12111)
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
    return serve.parse(parser, argv)


def build(args: argparse.Namespace) -> FakeStripe:
    keys = serve.split(args.keys)
    fake = FakeStripe(
        keys,
        rate_limits={"enabled": not args.no_rate_limits},
        faults={"seed": args.seed, "error_rate": args.error_rate, "latency_ms": args.latency_ms},
        webhooks={"url": args.webhook_url, "secret": args.webhook_secret},
    )
    modes = sorted({livemode_of(k) for k in keys})
    for account in [None, *serve.split(args.accounts)]:
        for livemode in modes:
            for customer in serve.split(args.customers):
                fake.seed_customer(
                    customer, currency=args.currency, account=account, livemode=livemode
                )
    return fake


def main(argv: Sequence[str] | None = None) -> int:
    return serve.run(parse_args(sys.argv[1:] if argv is None else argv), build)
