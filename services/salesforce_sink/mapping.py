"""Prepared bills -> Salesforce records and the plan of calls that writes them (pure: no
I/O, no clock, no environment).

A bill is one record of the bill object (default `Billsync_Bill__c`, upserted by the
External ID field `Billsync_Bill_Id__c` = the m3ter bill id) and one record of the line
object per line (`Billsync_Bill_Line__c`, External ID `Billsync_Line_Id__c` =
`{bill id}:{line id}`), each line pointing at its bill by the bill's external id
(`"Bill__r": {"Billsync_Bill_Id__c": ...}`) so bill and lines travel in one call.

The bill's parent Account: with "use external mapping account code" the external mapping
gives the Salesforce Account id (`Account__c: "001..."`); without it the Account is found
by the m3ter account id in an External ID field on Account
(`"Account__r": {"Billsync_Account_Id__c": "acc-..."}`). A missing mapping is a
MissingAccountMappingError before any call.

The plan packs a batch into Composite requests: each carries at most 5 sObject
Collections or query subrequests (Salesforce's limit), a collection at most 200 records:
the group's bills, then their lines, then one query for the lines Salesforce holds for
these bills, so lines that vanished from a regenerated bill can be deleted afterwards.
Everything Salesforce would refuse for its shape (numbers beyond 18 digits, a property
mapped to nothing known) is refused here, per bill, before the first request."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote_plus

from shared.contracts import Bill, ExternalMapping, ExternalSystem, LineItem
from shared.contracts.config import (
    SalesforceDestinationConfig,
    SalesforceIntegrationConfig,
)
from shared.money import format_decimal
from shared.routing.prepare import prepare_lines
from shared.sinks.customers import resolve_customer
from shared.sinks.errors import FatalBillError

CUSTOMER_TABLE = "Account"  # external mappings of an account to a Salesforce Account
MAX_COLLECTION = 200  # records per sObject Collections request
MAX_HEAVY_SUBREQUESTS = 5  # collections or queries per Composite request
MAX_SUBREQUESTS = 25
LINE_COLLECTIONS_PER_GROUP = MAX_HEAVY_SUBREQUESTS - 2  # 1 bill collection + 1 query
NAME_LENGTH = 80  # the Name field of a custom object
# Number(18, scale): the defaults keep 4 decimals on money, so 14 integer digits.
MAX_INTEGER_DIGITS = 14

# Defaults: property -> field (docs/destinations/salesforce.md lists them for the admin).
DEFAULT_BILL_FIELDS: Mapping[str, str] = {
    "name": "Name",
    "version": "Bill_Version__c",
    "accountCode": "Account_Code__c",
    "billDate": "Bill_Date__c",
    "dueDate": "Due_Date__c",
    "startDate": "Start_Date__c",
    "endDate": "End_Date__c",
    "currency": "Currency__c",
    "status": "Status__c",
    "billTotal": "Bill_Total__c",
    "purchaseOrderNumber": "Purchase_Order_Number__c",
    "sequentialInvoiceNumber": "Invoice_Number__c",
    "externalInvoiceReference": "External_Invoice_Reference__c",
    "billingFrequency": "Billing_Frequency__c",
    "lastCalculatedDate": "Last_Calculated_Date__c",
}
DEFAULT_LINE_FIELDS: Mapping[str, str] = {
    "name": "Name",
    "position": "Position__c",
    "lineItemType": "Line_Item_Type__c",
    "description": "Description__c",
    "quantity": "Quantity__c",
    "unit": "Unit__c",
    "averageUnitPrice": "Average_Unit_Price__c",
    "subtotal": "Subtotal__c",
    "currency": "Currency__c",
    "productId": "Product_Id__c",
    "productCode": "Product_Code__c",
    "productName": "Product_Name__c",
    "aggregationId": "Aggregation_Id__c",
    "servicePeriodStartDate": "Service_Period_Start__c",
    "servicePeriodEndDate": "Service_Period_End__c",
}
_NUMERIC = {"version", "billTotal", "position", "quantity", "averageUnitPrice", "subtotal"}
Value = str | int | None
Record = Mapping[str, Any]


@dataclass(frozen=True)
class BillRecords:
    """One bill as Salesforce records."""

    bill_id: str
    bill_version: int
    bill: Record
    lines: tuple[Record, ...]

    @property
    def line_keys(self) -> frozenset[str]:
        return frozenset(str(line[_LINE_KEY]) for line in self.lines)


_LINE_KEY = "__line_key__"  # never sent: stripped by `wire_line`


@dataclass(frozen=True)
class Subrequest:
    """One Composite subrequest. `kind`: bills | lines | query | delete."""

    kind: str
    reference_id: str
    method: str
    url: str
    body: Mapping[str, Any] | None
    bill_ids: tuple[str, ...]  # bills whose records (or lines) this subrequest carries

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method,
            "url": self.url,
            "referenceId": self.reference_id,
        }
        if self.body is not None:
            out["body"] = self.body
        return out


@dataclass(frozen=True)
class CompositePlan:
    subrequests: tuple[Subrequest, ...]

    def wire(self) -> dict[str, Any]:
        # allOrNone false: one bad record fails only its bill, never the batch.
        return {
            "allOrNone": False,
            "compositeRequest": [s.wire() for s in self.subrequests],
        }


@dataclass(frozen=True)
class Objects:
    """The object and field names a configuration uses."""

    api_version: str
    bill_object: str
    bill_key: str
    line_object: str
    line_key: str
    line_bill_field: str

    @property
    def line_bill_relationship(self) -> str:
        return self.line_bill_field[: -len("__c")] + "__r"

    @property
    def base(self) -> str:
        return f"/services/data/{self.api_version}"

    @classmethod
    def of(cls, config: SalesforceDestinationConfig) -> Objects:
        return cls(
            config.api_version,
            config.bill_object,
            config.bill_external_id_field,
            config.line_object,
            config.line_external_id_field,
            config.line_bill_field,
        )


# -- the account ------------------------------------------------------------------------


def resolve_account(
    bill: Bill, config: SalesforceIntegrationConfig, mappings: Iterable[ExternalMapping]
) -> str:
    """The customer the framework resolves before delivery (shared/sinks/customers.py):
    the m3ter account id, or with "use external mapping account code" the Salesforce
    Account id of the external mapping (MissingAccountMappingError when there is none)."""
    return resolve_customer(
        bill.account_id, config, mappings, ExternalSystem.SALESFORCE, CUSTOMER_TABLE
    )


def account_reference(
    bill: Bill, config: SalesforceIntegrationConfig, customer_id: str
) -> dict[str, Any]:
    """The bill record's parent Account fields (empty when no lookup is configured)."""
    dest = config.destination_config
    if dest.account_lookup_field is None:
        return {}
    if not config.entity_config.use_external_mapping_account_code:
        relationship = dest.account_lookup_field[: -len("__c")] + "__r"
        return {relationship: {dest.account_external_id_field: bill.account_id}}
    if not _looks_like_id(customer_id):
        raise FatalBillError(
            f"the Salesforce external mapping of account {bill.account_id!r} holds "
            f"{customer_id!r}, which is not a Salesforce record id (15 or 18 letters and "
            "digits, an Account starts with 001): correct the mapping, then resend the bill"
        )
    return {dest.account_lookup_field: customer_id}


def _looks_like_id(value: str) -> bool:
    return len(value) in (15, 18) and value.isalnum() and value.isascii()


# -- records ----------------------------------------------------------------------------


def _fields(defaults: Mapping[str, str], overrides: Mapping[str, str | None]) -> dict[str, str]:
    merged: dict[str, str | None] = {**defaults, **overrides}
    return {prop: target for prop, target in merged.items() if target is not None}


def _number(value: Decimal, what: str, bill_id: str) -> str:
    if not value.is_finite():
        raise FatalBillError(f"bill {bill_id}: {what} is not a finite number")
    integer_digits = max(value.adjusted() + 1, 0)
    if integer_digits > MAX_INTEGER_DIGITS:
        raise FatalBillError(
            f"bill {bill_id}: {what} {format_decimal(value)} has {integer_digits} digits "
            f"before the point; a Salesforce number field (18, 4) holds at most "
            f"{MAX_INTEGER_DIGITS}"
        )
    return format_decimal(value)


def _text(value: object) -> Value:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _bill_values(bill: Bill) -> dict[str, object]:
    return {
        "name": (bill.sequential_invoice_number or bill.id)[:NAME_LENGTH],
        "version": bill.version,
        "accountCode": bill.account_code,
        "billDate": bill.bill_date,
        "dueDate": bill.due_date,
        "startDate": bill.start_date,
        "endDate": bill.end_date,
        "currency": bill.currency,
        "status": bill.status.value,
        "billTotal": bill.bill_total,
        "purchaseOrderNumber": bill.purchase_order_number,
        "sequentialInvoiceNumber": bill.sequential_invoice_number,
        "externalInvoiceReference": bill.external_invoice_reference,
        "billingFrequency": bill.billing_frequency,
        "lastCalculatedDate": bill.last_calculated_date,
    }


def _line_values(line: LineItem, position: int, currency: str) -> dict[str, object]:
    label = line.description or line.product_name or line.line_item_type.value
    return {
        "name": label[:NAME_LENGTH],
        "position": position,
        "lineItemType": line.line_item_type.value,
        "description": line.description,
        "quantity": line.quantity,
        "unit": line.unit,
        "averageUnitPrice": line.average_unit_price,
        "subtotal": line.subtotal,
        "currency": line.currency or currency,
        "productId": line.product_id,
        "productCode": line.product_code,
        "productName": line.product_name,
        "aggregationId": line.aggregation_id,
        "servicePeriodStartDate": line.service_period_start_date,
        "servicePeriodEndDate": line.service_period_end_date,
    }


def _render(
    values: Mapping[str, object], fields: Mapping[str, str], bill_id: str
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for prop, target in fields.items():
        value = values.get(prop)
        if value is None:
            out[target] = None  # a value removed on regeneration is cleared, not kept
        elif prop in _NUMERIC and isinstance(value, Decimal):
            out[target] = _number(value, prop, bill_id)
        elif prop in _NUMERIC and isinstance(value, int):
            out[target] = value
        else:
            out[target] = _text(value)
    return out


def line_key(bill_id: str, line_id: str) -> str:
    return f"{bill_id}:{line_id}"


def plan_records(bill: Bill, config: SalesforceIntegrationConfig, customer_id: str) -> BillRecords:
    """One bill's records. Excluded line item types are dropped and lines sorted as the
    configuration says (the router prepared the bill already; preparing again is a no-op
    that keeps this plan right for any caller)."""
    dest = config.destination_config
    objects = Objects.of(dest)
    parent = account_reference(bill, config, customer_id)
    lines = prepare_lines(bill.line_items, config.entity_config)
    bill_fields = _fields(DEFAULT_BILL_FIELDS, dest.bill_field_mapping)
    line_fields = _fields(DEFAULT_LINE_FIELDS, dest.line_field_mapping)
    bill_record: dict[str, Any] = {
        "attributes": {"type": objects.bill_object},
        objects.bill_key: bill.id,
        **_render(_bill_values(bill), bill_fields, bill.id),
        **parent,
    }
    line_records = []
    seen: set[str] = set()
    for position, line in enumerate(lines, start=1):
        if line.id in seen:
            raise FatalBillError(
                f"bill {bill.id} has two lines with id {line.id!r}; each line becomes one "
                f"{objects.line_object} record keyed by its id"
            )
        seen.add(line.id)
        key = line_key(bill.id, line.id)
        line_records.append(
            {
                _LINE_KEY: key,
                "attributes": {"type": objects.line_object},
                objects.line_key: key,
                objects.line_bill_relationship: {objects.bill_key: bill.id},
                **_render(_line_values(line, position, bill.currency), line_fields, bill.id),
            }
        )
    return BillRecords(bill.id, bill.version, bill_record, tuple(line_records))


def wire_line(record: Record) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != _LINE_KEY}


# -- the plan of calls ------------------------------------------------------------------


def _soql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def existing_lines_query(objects: Objects, bill_ids: Sequence[str]) -> str:
    """SOQL for the lines Salesforce holds for these bills (to find vanished ones)."""
    ids = ", ".join(_soql_string(b) for b in bill_ids)
    return (
        f"SELECT Id, {objects.line_key}, {objects.line_bill_relationship}.{objects.bill_key} "
        f"FROM {objects.line_object} "
        f"WHERE {objects.line_bill_relationship}.{objects.bill_key} IN ({ids})"
    )


def _groups(bills: Sequence[BillRecords]) -> list[list[BillRecords]]:
    """Consecutive bills whose records fit one Composite: at most 200 bills and as many
    lines as 3 collections hold. A bill with more lines than that is a group alone."""
    groups: list[list[BillRecords]] = []
    current: list[BillRecords] = []
    lines = 0
    limit = LINE_COLLECTIONS_PER_GROUP * MAX_COLLECTION
    for bill in bills:
        n = len(bill.lines)
        if current and (len(current) >= MAX_COLLECTION or lines + n > limit):
            groups.append(current)
            current, lines = [], 0
        current.append(bill)
        lines += n
    if current:
        groups.append(current)
    return groups


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def plan_upserts(objects: Objects, bills: Sequence[BillRecords]) -> list[CompositePlan]:
    """Composite requests that upsert these bills and their lines and read back the lines
    Salesforce holds for them, in order (a bill's lines after the bill)."""
    subrequests: list[Subrequest] = []
    for n, group in enumerate(_groups(bills)):
        ids = tuple(b.bill_id for b in group)
        subrequests.append(
            Subrequest(
                "bills",
                f"bills{n}",
                "PATCH",
                f"{objects.base}/composite/sobjects/{objects.bill_object}/{objects.bill_key}",
                {"allOrNone": False, "records": [b.bill for b in group]},
                ids,
            )
        )
        pairs = [(b.bill_id, line) for b in group for line in b.lines]
        for m, chunk in enumerate(_chunks(pairs, MAX_COLLECTION)):
            subrequests.append(
                Subrequest(
                    "lines",
                    f"lines{n}_{m}",
                    "PATCH",
                    f"{objects.base}/composite/sobjects/{objects.line_object}/{objects.line_key}",
                    {"allOrNone": False, "records": [wire_line(line) for _, line in chunk]},
                    tuple(bill_id for bill_id, _ in chunk),
                )
            )
        subrequests.append(
            Subrequest(
                "query",
                f"existing{n}",
                "GET",
                f"{objects.base}/query?q={quote_plus(existing_lines_query(objects, ids))}",
                None,
                ids,
            )
        )
    return _pack(subrequests)


def plan_deletes(objects: Objects, vanished: Sequence[tuple[str, str]]) -> list[CompositePlan]:
    """Composite requests deleting (bill id, record id) pairs, 200 ids a collection."""
    subrequests = [
        Subrequest(
            "delete",
            f"delete{n}",
            "DELETE",
            f"{objects.base}/composite/sobjects?allOrNone=false&ids="
            + ",".join(record_id for _, record_id in chunk),
            None,
            tuple(bill_id for bill_id, _ in chunk),
        )
        for n, chunk in enumerate(_chunks(list(vanished), MAX_COLLECTION))
    ]
    return _pack(subrequests)


def _pack(subrequests: Sequence[Subrequest]) -> list[CompositePlan]:
    plans: list[CompositePlan] = []
    for chunk in _chunks(list(subrequests), MAX_HEAVY_SUBREQUESTS):
        plans.append(CompositePlan(tuple(chunk)))
    return plans
