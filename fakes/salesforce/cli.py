"""``python -m fakes.salesforce``: run the local Salesforce for the local development stack.

One connected app (``--client-id``/``--client-secret``) offering the three flows: JWT bearer
when ``--public-key`` names the certificate's public key (PEM), client credentials running
as ``--run-as``, and the web-server flow. ``--accounts`` seeds Accounts carrying billsync's
account external id (``acc-0001=Acme Inc,...``) and prints their Salesforce ids."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from fakes.common import serve

from .fake import FakeSalesforce


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = serve.parser("python -m fakes.salesforce", __doc__, 12113)
    parser.add_argument("--client-id", default="billsync-local-app")
    parser.add_argument("--client-secret", default="local-secret")
    parser.add_argument("--public-key", default=None, help="PEM file (JWT bearer)")
    parser.add_argument("--run-as", default="integration@billsync.local")
    parser.add_argument("--users", default="integration@billsync.local")
    parser.add_argument("--accounts", default="", help="acc-id=Name,... Accounts to seed")
    parser.add_argument("--daily-limit", type=int, default=100_000)
    parser.add_argument("--concurrent-limit", type=int, default=25)
    parser.add_argument("--session-seconds", type=float, default=7200.0)
    return serve.parse(parser, argv)


def build(args: argparse.Namespace) -> FakeSalesforce:
    fake = FakeSalesforce(
        daily_limit=args.daily_limit,
        concurrent_limit=args.concurrent_limit,
        session_seconds=args.session_seconds,
    )
    public_key = Path(args.public_key).read_text() if args.public_key else None
    fake.add_app(
        args.client_id,
        client_secret=args.client_secret,
        public_key_pem=public_key,
        run_as=args.run_as or None,
    )
    for user in (u.strip() for u in args.users.split(",")):
        if user:
            fake.add_user(user)
    return fake


def seed_accounts(fake: FakeSalesforce, spec: str) -> dict[str, str]:
    seeded = {}
    for item in (part.strip() for part in spec.split(",")):
        if item:
            account_id, _, name = item.partition("=")
            seeded[account_id] = fake.seed(
                "Account", Name=name or account_id, Billsync_Account_Id__c=account_id
            )
    return seeded


def announce(fake: FakeSalesforce, args: argparse.Namespace, url: str) -> str:
    """Once listening: seed the Accounts and print their ids with the URL."""
    return json.dumps({"url": url, "accounts": seed_accounts(fake, args.accounts)})


def main(argv: Sequence[str] | None = None) -> int:
    return serve.run(parse_args(sys.argv[1:] if argv is None else argv), build, announce)
