"""`billsync produce-sample`: publish sample accounts and bills to the local broker."""

from __future__ import annotations

import argparse
import asyncio

from shared.contracts import BillStatus
from shared.kafka.producer import make_producer
from shared.kafka.topics import ensure_topics
from shared.sampledata import make_accounts, make_bills
from shared.settings import get_settings


async def produce_sample(accounts: int, bills: int, lines: int, approve: bool) -> None:
    settings = get_settings()
    await ensure_topics(settings)
    producer = make_producer(settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        account_list = make_accounts(accounts)
        for account in account_list:
            await producer.send(
                settings.topics.name("accounts"), account.to_bytes(), key=account.id.encode()
            )
        bill_list = make_bills(account_list, bills, lines, embed_account=False)
        for bill in bill_list:
            await producer.send(
                settings.topics.name("bill_generated"), bill.to_bytes(), key=bill.id.encode()
            )
            if approve:
                approved = bill.model_copy(update={"status": BillStatus.APPROVED, "locked": True})
                await producer.send(
                    settings.topics.name("bill_approved"), approved.to_bytes(), key=bill.id.encode()
                )
        await producer.flush()
    finally:
        await producer.stop()
    print(
        f"published {len(account_list)} accounts and {len(bill_list)} bills "
        f"({lines} lines each){' with approvals' if approve else ''}"
    )


def _run(args: argparse.Namespace) -> int:
    asyncio.run(produce_sample(args.accounts, args.bills, args.lines, args.approve))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("produce-sample", help="publish sample accounts and bills")
    p.add_argument("--accounts", type=int, default=12)
    p.add_argument("--bills", type=int, default=40)
    p.add_argument("--lines", type=int, default=12)
    p.add_argument("--approve", action="store_true", help="also publish approvals")
    p.set_defaults(func=_run)
