"""Dry run: which configurations would take a replayed bill, and what each destination
already holds (pure: the tables are passed in)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from shared.contracts import Account, Bill, Trigger
from shared.routing import CompiledRoute, route_bill
from shared.sinks.invoice_map import InvoiceMapRecord, map_key


@dataclass(frozen=True, slots=True)
class Target:
    config_id: str
    destination: str
    invoice_state: str | None  # None: no invoice yet, a new one would be created
    external_id: str | None


@dataclass(slots=True)
class BillPlan:
    bill_id: str
    bill_version: int
    account_id: str
    partition: int
    offset: int
    targets: list[Target] = field(default_factory=list)
    filtered: dict[str, int] = field(default_factory=dict)
    problem: str | None = None  # why the router would not route it at all

    def to_json(self) -> dict[str, Any]:
        return {
            "billId": self.bill_id,
            "billVersion": self.bill_version,
            "accountId": self.account_id,
            "partition": self.partition,
            "offset": self.offset,
            "configurations": [
                {
                    "integrationConfigId": t.config_id,
                    "destination": t.destination,
                    "existingInvoice": None
                    if t.invoice_state is None
                    else {"state": t.invoice_state, "externalId": t.external_id},
                }
                for t in self.targets
            ],
            "filtered": self.filtered,
            "problem": self.problem,
        }

    def to_text(self) -> str:
        head = (
            f"p{self.partition}@{self.offset} bill {self.bill_id} v{self.bill_version} "
            f"account {self.account_id}"
        )
        if self.problem:
            return f"{head}: {self.problem}"
        parts = []
        for t in self.targets:
            existing = (
                f"existing invoice {t.external_id or '-'} {t.invoice_state}"
                if t.invoice_state
                else "no invoice yet (would create)"
            )
            parts.append(f"\n  -> {t.config_id} ({t.destination}): {existing}")
        if not parts:
            parts.append("\n  -> no configuration would take it")
        if self.filtered:
            reasons = ", ".join(f"{k}={v}" for k, v in sorted(self.filtered.items()))
            parts.append(f"\n  (not taken: {reasons})")
        return head + "".join(parts)


def plan_bill(
    bill: Bill,
    partition: int,
    offset: int,
    routes: Iterable[CompiledRoute],
    account_of: Callable[[str], Account | None],
    invoice_of: Callable[[str], InvoiceMapRecord | None],
    approved_source: bool,
    only: frozenset[str] | None,
) -> BillPlan:
    plan = BillPlan(bill.id, bill.version, bill.account_id, partition, offset)
    account = bill.account or account_of(bill.account_id)
    if account is None:
        plan.problem = (
            f"account {bill.account_id} is unknown (not embedded, not in the "
            f"accounts topic): the router would dead-letter it"
        )
        return plan
    result = route_bill(bill, account, Trigger.REPLAY, routes, approved_source, only)
    plan.filtered = {reason.value: n for reason, n in result.filtered.items()}
    for match in result.matches:
        config = match.route.config
        record = invoice_of(map_key(config.id, bill.id))
        plan.targets.append(
            Target(
                config.id,
                config.destination.value,
                record.state.value if record else None,
                record.external_id if record else None,
            )
        )
    return plan
