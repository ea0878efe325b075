"""``python -m fakes.paddle``: the local Paddle for the development stack (`make up`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Sequence

from .fake import FakePaddle


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fakes.paddle", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12112)
    parser.add_argument("--environment", choices=("sandbox", "live"), default="sandbox")
    parser.add_argument("--keys", default="pdl_sdbx_apikey_local", help="comma-separated keys")
    parser.add_argument(
        "--customers",
        default="",
        help="comma-separated customer ids (ctm_ + 26 characters) to seed, each with an "
        "address add_<same 26> and a business biz_<same 26>",
    )
    parser.add_argument("--no-rate-limits", action="store_true")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(list(argv))


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


async def serve(fake: FakePaddle, host: str, port: int) -> None:
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
