"""``python -m fakes.xero``: run the local Xero for the development stack.

Seeds one organisation (tenant id `--tenant`), its contacts and items, an OAuth app
(`--client-id/--client-secret`) connected to it with a refresh token printed once so a
credential can be stored, and optionally a custom connection (client credentials)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from fakes.common import serve

from .fake import FakeXero


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = serve.parser("python -m fakes.xero", __doc__, 12114)
    parser.add_argument("--tenant", default="00000000-0000-4000-8000-00000000d3e0")
    parser.add_argument("--name", default="Demo Company (Local)")
    parser.add_argument("--client-id", default="xero-client")
    parser.add_argument("--client-secret", default="xero-secret")
    parser.add_argument("--custom-client-id", default=None, help="a custom connection's client id")
    parser.add_argument("--custom-client-secret", default="custom-secret")
    parser.add_argument("--contacts", default="", help="comma-separated ContactID=Name pairs")
    parser.add_argument(
        "--items", default="", help="comma-separated item codes (sales account 200)"
    )
    parser.add_argument("--refresh-token", default=None, help="accept this refresh token (seeded)")
    parser.add_argument("--no-rate-limits", action="store_true")
    parser.add_argument("--minute-limit", type=int, default=60, help="calls per window")
    parser.add_argument("--window-seconds", type=float, default=60.0, help="Xero's minute")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    return serve.parse(parser, argv)


def build(args: argparse.Namespace) -> FakeXero:
    fake = FakeXero(
        rate_limits=not args.no_rate_limits,
        latency=args.latency_ms / 1000.0,
        clients={args.client_id: args.client_secret},
        minute_limit=args.minute_limit,
        window_seconds=args.window_seconds,
    )
    org = fake.add_organisation(args.name, args.tenant)
    for pair in serve.split(args.contacts):
        contact_id, _, name = pair.partition("=")
        org.add_contact(name or contact_id, contact_id)
    for code in serve.split(args.items):
        org.add_item(code, code, "200")
    fake.connect(args.client_id, org.tenant_id)
    if args.custom_client_id:
        fake.config.clients[args.custom_client_id] = args.custom_client_secret
        fake.config.custom_connections[args.custom_client_id] = org.tenant_id
    if args.refresh_token:
        fake.seed_refresh_token(args.client_id, args.refresh_token, (org.tenant_id,))
    return fake


def announce(fake: FakeXero, args: argparse.Namespace, url: str) -> str:
    return json.dumps({"url": url, "tenants": list(fake.organisations)})


def main(argv: Sequence[str] | None = None) -> int:
    return serve.run(parse_args(sys.argv[1:] if argv is None else argv), build, announce)
