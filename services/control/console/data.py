"""What the console reads besides the control plane's tables: the accounts billsync knows
(the compacted `accounts` topic), recent bills, and previews built from the pure routing,
preparation and mapping functions the router and sinks use."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import importlib.util
import json
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aiokafka import AIOKafkaConsumer

from shared.contracts import (
    Account,
    Bill,
    Destination,
    ExternalMapping,
    ExternalSystem,
    IntegrationConfig,
)
from shared.contracts.config import StripeIntegrationConfig
from shared.kafka.client_options import kafka_options
from shared.kafka.ranges import read_ranges, topic_partitions
from shared.kafka.table import CompactedTable
from shared.lifecycle import cancel_and_wait
from shared.logging import get_logger
from shared.routing import compile_route, prepare_bill
from shared.routing.rules import FilterReason, account_view, decide_account
from shared.settings import Settings
from shared.sinks.customers import resolve_customer
from shared.sinks.errors import FatalBillError, MissingAccountMappingError

log = get_logger(__name__)
RECENT_BILLS = 200  # per partition, newest


class AccountBook:
    """The accounts topic, followed in the background; empty until it has been read."""

    def __init__(self, settings: Settings) -> None:
        self.table = CompactedTable[Account](
            settings.topics.name("accounts"),
            settings.kafka_bootstrap_servers,
            Account.model_validate_json,
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._follow(), name="console-accounts")

    async def _follow(self) -> None:
        try:
            await self.table.start(wait_ready=False)
        except Exception:
            log.exception("console_accounts_unavailable", topic=self.table.topic)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        with contextlib.suppress(Exception):
            await self.table.stop()

    @property
    def ready(self) -> bool:
        return self.table.ready.is_set()

    def all(self) -> list[Account]:
        return sorted(self.table.values(), key=lambda a: a.id)

    def get(self, account_id: str) -> Account | None:
        return self.table.get(account_id)

    def search(self, text: str, limit: int = 50) -> list[Account]:
        needle = text.strip().lower()
        found = [
            a
            for a in self.all()
            if not needle
            or needle in a.id.lower()
            or needle in (a.account_name or "").lower()
            or needle in (a.account_code or "").lower()
        ]
        return found[:limit]


async def recent_bills(settings: Settings, per_partition: int = RECENT_BILLS) -> list[Bill]:
    """The newest bills on bill-generated (latest version of each id), newest first."""
    topic = settings.topics.name("bill_generated")
    consumer = AIOKafkaConsumer(
        **kafka_options(settings.kafka_bootstrap_servers),
        group_id=None,
        enable_auto_commit=False,
    )
    await consumer.start()
    bills: dict[str, tuple[int, Bill]] = {}
    try:
        tps = await topic_partitions(consumer, topic, attempts=2)
        if not tps:
            return []
        starts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        spans = {tp: (max(starts[tp], ends[tp] - per_partition), ends[tp]) for tp in tps}
        async for records in read_ranges(consumer, spans, max_records=1000):
            for record in records:
                try:
                    bill = Bill.model_validate_json(record.value or b"")
                except ValueError:
                    continue
                previous = bills.get(bill.id)
                if previous is None or previous[1].version <= bill.version:
                    bills[bill.id] = (record.timestamp, bill)
    finally:
        await consumer.stop()
    return [b for _, b in sorted(bills.values(), key=lambda x: -x[0])]


def sink_built(destination: Destination) -> bool:
    """Whether this installation has the destination's sink service."""
    return importlib.util.find_spec(f"services.{destination.family}_sink") is not None


# ---- preview ----------------------------------------------------------------------------

REASON_TEXT = {
    FilterReason.DENY_LIST: "in Restricted Account Ids",
    FilterReason.NOT_IN_ALLOW_LIST: "not in Account Ids",
    FilterReason.FILTER_FALSE: "the account filter is false for it",
}


@dataclass(frozen=True)
class AccountMatch:
    account: Account
    reason: FilterReason | None

    @property
    def matches(self) -> bool:
        return self.reason is None

    @property
    def why(self) -> str:
        return "matches" if self.reason is None else REASON_TEXT.get(self.reason, self.reason)


def match_accounts(config: IntegrationConfig, accounts: Iterable[Account]) -> list[AccountMatch]:
    """Each account with the rule that keeps it out (None: the configuration takes its bills),
    using the router's own account rules."""
    route = compile_route(config)
    out = [AccountMatch(a, decide_account(route, a.id, account_view(a))) for a in accounts]
    return sorted(out, key=lambda m: (not m.matches, m.account.id))


@dataclass
class PayloadPreview:
    bill: Bill
    account: Account | None
    kind: str  # "stripe_plan" | "prepared_bill"
    payload: str = ""  # pretty JSON
    customer: str | None = None
    problem: str | None = None


SYSTEM = {
    "stripe": ExternalSystem.STRIPE,
    "paddle": ExternalSystem.PADDLE,
    "salesforce": ExternalSystem.SALESFORCE,
    "xero": ExternalSystem.XERO,
}


def preview_payload(
    config: IntegrationConfig,
    bill: Bill,
    account: Account | None,
    mappings: Iterable[ExternalMapping],
) -> PayloadPreview:
    """What the destination would be sent for this bill: the router's prepared bill, and
    for Stripe the sink's exact invoice plan (nothing is sent)."""
    prepared = prepare_bill(bill, config.entity_config)
    account = bill.account or account
    if not isinstance(config, StripeIntegrationConfig):
        return PayloadPreview(prepared, account, "prepared_bill", to_json(prepared.to_wire()))
    preview = PayloadPreview(prepared, account, "stripe_plan")
    if account is None:
        preview.problem = (
            f"account {bill.account_id} is unknown (not embedded in the bill, not in the "
            "accounts topic): the router would dead-letter this bill"
        )
        return preview
    from services.stripe_sink.destination import StripeDestination
    from services.stripe_sink.mapping import plan_invoice  # the sink's own pure plan

    try:
        preview.customer = resolve_customer(
            account.id,
            config,
            mappings,
            SYSTEM[config.destination.family],
            StripeDestination.customer_table,
        )
        plan = plan_invoice(prepared, account, config, preview.customer)
    except (FatalBillError, MissingAccountMappingError) as exc:
        preview.problem = str(exc)
        return preview
    preview.payload = to_json(dataclasses.asdict(plan))
    return preview


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, enum.Enum):
        return value.value
    return str(value)


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, default=_plain, ensure_ascii=False)
