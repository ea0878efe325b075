"""``python -m fakes.paddle``: the local Paddle for the development stack (`make up`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from fakes.common import serve

from .fake import FakePaddle


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = serve.parser("python -m fakes.paddle", __doc__, 12112)
    parser.add_argument("--environment", choices=("sandbox", "live"), default="sandbox")
    parser.add_argument("--keys", default="pdl_sdbx_apikey_local", help="comma-separated keys")
    parser.add_argument(
        "--customers",
        default="",
        help="comma-separated customer ids (ctm_ + 26 characters) to seed, each with an "
        "address add_<same 26> and a business biz_<same 26>",
    )
    parser.add_argument("--no-rate-limits", action="store_true")
    return serve.parse(parser, argv)


def build(args: argparse.Namespace) -> FakePaddle:
    keys = [k.strip() for k in args.keys.split(",") if k.strip()]
    fake = FakePaddle(
        keys, environment=args.environment, rate_limits={"enabled": not args.no_rate_limits}
    )
    for cid in (c.strip() for c in args.customers.split(",")):
        if cid:
            suffix = cid.removeprefix("ctm_")
            seeded = fake.seed_customer(
                customer_id=cid,
                address_id=f"add_{suffix}",
                business_id=f"biz_{suffix}",
                business="Sample Ltd",
            )
            print(json.dumps(seeded))
    return fake


def main(argv: Sequence[str] | None = None) -> int:
    return serve.run(parse_args(sys.argv[1:] if argv is None else argv), build)
