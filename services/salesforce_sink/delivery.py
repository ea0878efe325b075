"""Delivering a batch of bills to Salesforce: the plan's Composite calls, their per-record
results mapped back to each bill, and deletes of lines that vanished.

Recovery story: every write is an upsert by external id, so writing a bill again (after a
5xx, a timeout, a dropped connection that may have committed, a redelivered envelope, or a
regenerated bill) updates the same records and never creates a second one. Lines a
regenerated bill no longer has are found by reading back the lines Salesforce holds for
the bill (in the same Composite, after the upserts) and deleted by id; a delete that finds
the line already gone counts as done. One bill's refused record fails that bill only
(`allOrNone` is false everywhere); a failure of a whole call fails the bills that call
carried, and when nothing at all was written it is raised for the whole batch.

Nothing here touches Kafka or the clock; the framework's ProviderCalls wraps each call."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.contracts import RunStatus, SalesforceIntegrationConfig
from shared.sinks.destination import DeliveryRequest, DeliveryResult, ProviderCalls
from shared.sinks.errors import FatalBillError, InvoiceLockedError, RetriableError, SinkError
from shared.sinks.invoice_map import InvoiceState

from .client import SalesforceApi, query_page
from .errors import LOCKED_CODES, RECORD_RETRIABLE_CODES
from .mapping import BillRecords, Objects, Subrequest, plan_deletes, plan_records, plan_upserts

Outcome = DeliveryResult | SinkError
MAX_MESSAGE = 900
ALREADY_GONE = frozenset({"ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY"})


@dataclass
class _BillState:
    records: BillRecords
    record_id: str | None = None
    line_ids: list[str] = field(default_factory=list)
    held_lines: list[tuple[str, str]] = field(default_factory=list)  # (record id, key)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (code, text)
    failure: SinkError | None = None  # a whole call carrying this bill failed
    wrote: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems and self.failure is None


def _error_texts(body: Any) -> list[tuple[str, str]]:
    """(code, text) from Salesforce's error array (`errorCode` or `statusCode`)."""
    out = []
    for error in body if isinstance(body, list) else []:
        if not isinstance(error, Mapping):
            continue
        code = str(error.get("errorCode") or error.get("statusCode") or "UNKNOWN")
        fields = error.get("fields") or []
        where = f" (fields: {', '.join(map(str, fields))})" if fields else ""
        out.append((code, f"{code}: {error.get('message', '')}{where}"))
    return out


class BatchDelivery:
    """One batch for one configuration's settings and one org (client)."""

    def __init__(
        self,
        config: SalesforceIntegrationConfig,
        client: SalesforceApi,
        calls: ProviderCalls,
    ) -> None:
        self.config = config
        self.objects = Objects.of(config.destination_config)
        self.client = client
        self.calls = calls
        self.bills: dict[str, _BillState] = {}

    async def run(self, requests: Sequence[DeliveryRequest]) -> list[Outcome]:
        planned: list[Outcome | str] = []  # the bill id, or the plan's refusal
        for request in requests:
            # Members share destination settings, not entity settings (excluded types,
            # sorting, external mappings): each bill is planned with its own configuration.
            config = request.config
            if not isinstance(config, SalesforceIntegrationConfig):
                config = self.config
            try:
                records = plan_records(request.envelope.bill, config, request.customer_id)
            except SinkError as exc:
                planned.append(exc)
                continue
            current = self.bills.get(records.bill_id)
            # The same bill twice (two configurations sharing a batch, or two versions):
            # its records go once, the newest version's.
            if current is None or records.bill_version > current.records.bill_version:
                self.bills[records.bill_id] = _BillState(records)
            planned.append(records.bill_id)
        if self.bills:
            await self._upserts()
            await self._deletes()
        return [p if not isinstance(p, str) else self._outcome(self.bills[p]) for p in planned]

    # -- calls -----------------------------------------------------------------------------

    async def _upserts(self) -> None:
        plans = plan_upserts(self.objects, [s.records for s in self.bills.values()])
        for index, plan in enumerate(plans):
            try:
                answer = await self.calls.call(
                    "POST composite (upsert)",
                    functools.partial(self.client.composite, plan.wire()),
                    write=True,
                )
            except SinkError as exc:
                if not any(s.wrote for s in self.bills.values()):
                    raise  # nothing written: the whole batch failed, the framework retries it
                for later in plans[index:]:
                    for sub in later.subrequests:
                        for bill_id in sub.bill_ids:
                            self.bills[bill_id].failure = exc
                return
            by_ref = answer.by_reference()
            for sub in plan.subrequests:
                sub_answer = by_ref.get(sub.reference_id)
                if sub_answer is None:
                    self._sub_failed(sub, [("UNKNOWN", "no answer for this subrequest")])
                elif sub_answer.status >= 400:
                    self._sub_failed(sub, _error_texts(sub_answer.body))
                elif sub.kind == "query":
                    await self._held_lines(sub_answer.body)
                else:
                    self._results(sub, sub_answer.body)

    def _sub_failed(self, sub: Subrequest, problems: list[tuple[str, str]]) -> None:
        what = f"{sub.method} {sub.kind}"
        for bill_id in dict.fromkeys(sub.bill_ids):
            self.bills[bill_id].problems.extend(
                (code, f"{what}: {text}") for code, text in problems or [("UNKNOWN", what)]
            )

    def _results(self, sub: Subrequest, body: Any) -> None:
        results = body if isinstance(body, list) else []
        if len(results) != len(sub.bill_ids):
            self._sub_failed(sub, [("UNKNOWN", f"{len(results)} results")])
            return
        target = self.objects.bill_object if sub.kind == "bills" else self.objects.line_object
        key_field = self.objects.bill_key if sub.kind == "bills" else self.objects.line_key
        records = sub.body["records"] if sub.body else []
        for bill_id, result, record in zip(sub.bill_ids, results, records, strict=True):
            state = self.bills[bill_id]
            if isinstance(result, Mapping) and result.get("success"):
                state.wrote = True
                record_id = str(result.get("id"))
                if sub.kind == "bills":
                    state.record_id = record_id
                else:
                    state.line_ids.append(record_id)
                continue
            errors = result.get("errors") if isinstance(result, Mapping) else None
            for code, text in _error_texts(errors) or [("UNKNOWN", "refused")]:
                state.problems.append((code, f"{target} {record.get(key_field)}: {text}"))

    async def _held_lines(self, body: Any) -> None:
        page = query_page(body)
        rows = list(page.records)
        next_url = page.next_url
        while next_url:
            more = await self.calls.call(
                "GET query", functools.partial(self.client.query_more, next_url)
            )
            rows.extend(more.records)
            next_url = more.next_url
        relationship = self.objects.line_bill_relationship
        for row in rows:
            parent = row.get(relationship)
            bill_id = parent.get(self.objects.bill_key) if isinstance(parent, Mapping) else None
            state = self.bills.get(str(bill_id))
            if state is not None:
                state.held_lines.append((str(row.get("Id")), str(row.get(self.objects.line_key))))

    async def _deletes(self) -> None:
        vanished = [
            (bill_id, record_id)
            for bill_id, state in self.bills.items()
            if state.ok
            for record_id, key in state.held_lines
            if key not in state.records.line_keys
        ]
        if not vanished:
            return
        for plan in plan_deletes(self.objects, vanished):
            try:
                answer = await self.calls.call(
                    "POST composite (delete)",
                    functools.partial(self.client.composite, plan.wire()),
                    write=True,
                )
            except SinkError as exc:
                for sub in plan.subrequests:
                    for bill_id in sub.bill_ids:
                        self.bills[bill_id].failure = exc
                continue
            by_ref = answer.by_reference()
            for sub in plan.subrequests:
                sub_answer = by_ref.get(sub.reference_id)
                if sub_answer is None or sub_answer.status >= 400:
                    self._sub_failed(sub, _error_texts(sub_answer.body) if sub_answer else [])
                    continue
                results = sub_answer.body if isinstance(sub_answer.body, list) else []
                for bill_id, result in zip(sub.bill_ids, results, strict=False):
                    errors = _error_texts(
                        result.get("errors") if isinstance(result, Mapping) else None
                    )
                    if isinstance(result, Mapping) and not result.get("success"):
                        kept = [(c, t) for c, t in errors if c not in ALREADY_GONE]
                        self.bills[bill_id].problems.extend(
                            (c, f"delete of a vanished line: {t}") for c, t in kept
                        )

    # -- outcomes --------------------------------------------------------------------------

    def _outcome(self, state: _BillState) -> Outcome:
        if state.failure is not None:
            return state.failure
        if state.problems:
            codes = [code for code, _ in state.problems]
            text = "; ".join(dict.fromkeys(t for _, t in state.problems))
            message = f"Salesforce refused bill {state.records.bill_id}: {text}"
            if len(message) > MAX_MESSAGE:
                message = message[: MAX_MESSAGE - 3] + "..."
            if any(code in LOCKED_CODES for code in codes):
                return InvoiceLockedError(
                    f"the Salesforce records of bill {state.records.bill_id} are locked (an "
                    "approval process holds them); billsync leaves them as they are: unlock "
                    "them in Salesforce, then resend the bill"
                )
            if all(code in RECORD_RETRIABLE_CODES for code in codes):
                return RetriableError(message, provider_code=codes[0])
            return FatalBillError(message, status_code=400, provider_code=codes[0])
        url = None
        session = self.client.session
        if session is not None and state.record_id:
            url = (
                f"{session.instance_url.rstrip('/')}/lightning/r/"
                f"{self.objects.bill_object}/{state.record_id}/view"
            )
        return DeliveryResult(
            status=RunStatus.COMPLETE,
            state=InvoiceState.DRAFT,  # records stay editable: a regenerated bill updates them
            external_id=state.record_id,
            url=url,
            external_item_ids=list(state.line_ids),
        )
