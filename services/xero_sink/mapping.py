"""A prepared bill -> a `XeroDocumentPlan` (pure: no I/O, no clock, no uuid, no environment).

What goes where, and why:
- `InvoiceNumber` (or `CreditNoteNumber`) is the bill id. Xero keeps an ACCREC number unique
  in an organisation, which turns its own rule into our guard against doubles: a second
  create for the same bill is refused, a POST with the number updates the one invoice
  (Xero matches a POST by number), and `GET /Invoices?InvoiceNumbers=a,b,...` finds up to
  a page of bills in one call after a timeout. The number is stable across the bill's
  versions, so a regenerated bill updates its draft instead of making another invoice.
- `Reference` is what the customer and the accountant read: the purchase order number, or
  the bill id when there is none, followed by the bill version as ` (v3)`. The version is
  how the sink tells, when it finds an AUTHORISED or PAID document, whether it holds this
  very version (a write that landed before a timeout: COMPLETE) or an older one (never
  silently changed: INVOICE_ALREADY_PAID).
- Contact: the external mapping Account -> Contact (`customer_id`, resolved by the
  framework under "use external mapping account code" / "enforce external mappings for
  config"); without that setting the m3ter account is found or created by Xero through its
  `ContactNumber` (the account id) and `Name`.
- Lines: `ItemCode` from the mapping Product -> Item (or PricingBand -> Item for a band),
  `AccountCode` from Product -> Account, else the configuration's default account code;
  `TaxType` and `LineAmountTypes` from the settings. Enforced mappings: a product that has
  Xero mappings, none of them for this configuration, is a missing mapping (no call).
- Amounts: Xero computes a line as Quantity x UnitAmount rounded to cents, with four
  decimal places for both (`unitdp=4`). Every planned line is chosen so that product is
  exactly the amount planned for it; when the bill's own quantity cannot give it, the line
  is quantity 1 at its amount and the description carries the quantity.
- Split usage ITEM_PER_USAGE_BAND: one line per pricing band; the bands' cents are the
  line's cents (largest remainder), so the invoice adds up to the same total as
  ITEM_PER_PRODUCT. Bands that do not add up to their line's subtotal fall back to one line.
- A negative total is an ACCRECCREDIT credit note with every line negated (Xero cannot
  approve a negative invoice); negative lines inside a positive invoice stay lines."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

from shared.contracts import (
    Account,
    Bill,
    ExternalMapping,
    ExternalSystem,
    LineItem,
    PricingBandUsage,
)
from shared.contracts.config import XeroIntegrationConfig, XeroSplitUsageLineItems
from shared.money import format_decimal
from shared.routing.prepare import prepare_lines
from shared.sinks.errors import FatalBillError, MissingAccountMappingError

CENT = Decimal("0.01")
FOUR = Decimal("0.0001")  # unitdp=4: unit amounts and quantities keep four places
MAX_NUMBER = 255  # InvoiceNumber's maxLength in Xero's OpenAPI document
MAX_DESCRIPTION = 4000  # Xero's limit on a line description
MAX_REFERENCE = 255
TIMES = "\u00d7"
_VERSION = re.compile(r" \(v(\d+)\)$")


class DocumentKind(StrEnum):
    INVOICE = "Invoices"
    CREDIT_NOTE = "CreditNotes"

    @property
    def number_field(self) -> str:
        return "InvoiceNumber" if self is DocumentKind.INVOICE else "CreditNoteNumber"

    @property
    def id_field(self) -> str:
        return "InvoiceID" if self is DocumentKind.INVOICE else "CreditNoteID"

    @property
    def type(self) -> str:
        return "ACCREC" if self is DocumentKind.INVOICE else "ACCRECCREDIT"


@dataclass(frozen=True)
class PlannedLine:
    key: str  # the bill line id, with ":<band id>" for a band line
    description: str
    quantity: Decimal  # at most 4 places
    unit_amount: Decimal  # at most 4 places
    amount: Decimal  # what Xero computes: quantity x unit amount, rounded to cents
    account_code: str | None
    item_code: str | None
    tax_type: str | None

    def element(self) -> dict[str, Any]:
        line: dict[str, Any] = {
            "Description": self.description,
            "Quantity": self.quantity,
            "UnitAmount": self.unit_amount,
        }
        for name, value in (
            ("ItemCode", self.item_code),
            ("AccountCode", self.account_code),
            ("TaxType", self.tax_type),
        ):
            if value is not None:
                line[name] = value
        return line


@dataclass(frozen=True)
class XeroDocumentPlan:
    kind: DocumentKind
    bill_id: str
    version: int
    number: str
    reference: str
    contact: Mapping[str, str]
    date: dt.date | None
    due_date: dt.date | None
    currency: str
    status: str  # DRAFT, SUBMITTED or AUTHORISED
    line_amount_types: str
    lines: tuple[PlannedLine, ...]
    total: Decimal
    skip_reason: str | None = None

    def element(self) -> dict[str, Any]:
        """The document as PUT/POST /Invoices (or /CreditNotes) carries it."""
        body: dict[str, Any] = {
            "Type": self.kind.type,
            self.kind.number_field: self.number,
            "Reference": self.reference,
            "Contact": dict(self.contact),
            "CurrencyCode": self.currency,
            "Status": self.status,
            "LineAmountTypes": self.line_amount_types,
            "LineItems": [line.element() for line in self.lines],
        }
        if self.date is not None:
            body["Date"] = self.date.isoformat()
        if self.due_date is not None and self.kind is DocumentKind.INVOICE:
            body["DueDate"] = self.due_date.isoformat()
        return body


def reference_for(bill: Bill) -> str:
    head = (bill.purchase_order_number or "").strip() or bill.id
    return f"{head} (v{bill.version})"


def version_in(reference: str | None) -> int | None:
    """The bill version a document's Reference names (None: not one of ours)."""
    match = _VERSION.search(reference or "")
    return int(match.group(1)) if match else None


# ---- external mappings for products and bands -------------------------------------------


@dataclass(frozen=True)
class LineCodes:
    item_code: str | None
    account_code: str


def _ranked(
    mappings: Iterable[ExternalMapping],
    config: XeroIntegrationConfig,
    entities: tuple[str, ...],
    m3ter_id: str,
    table: str,
) -> tuple[list[ExternalMapping], bool]:
    """Mappings for this entity and table, best first, and whether any exist at all
    (before "enforce external mappings for config" leaves only this configuration's)."""
    found = [
        m
        for m in mappings
        if m.external_system == ExternalSystem.XERO
        and m.m3ter_entity.lower() in entities
        and m.m3ter_id == m3ter_id
        and m.external_table.lower() == table
    ]
    existed = bool(found)
    if config.entity_config.enforce_external_mappings_for_config:
        found = [m for m in found if m.integration_config_id == config.id]

    def rank(m: ExternalMapping) -> tuple[int, str]:
        if m.integration_config_id == config.id:
            return (0, m.id)
        return (1 if m.integration_config_id is None else 2, m.id)

    return sorted(found, key=rank), existed


def line_codes(
    line: LineItem,
    band_id: str | None,
    config: XeroIntegrationConfig,
    mappings: Sequence[ExternalMapping],
) -> LineCodes:
    default = config.destination_config.sales_account_code
    if line.product_id is None and band_id is None:
        return LineCodes(None, default)
    item: str | None = None
    account: str | None = None
    missing: list[str] = []
    keys: list[tuple[tuple[str, ...], str]] = []
    if band_id is not None:
        keys.append((("pricingband", "band"), band_id))
    if line.product_id is not None:
        keys.append((("product",), line.product_id))
    for entities, m3ter_id in keys:
        for table in ("item", "account"):
            ranked, existed = _ranked(mappings, config, entities, m3ter_id, table)
            if ranked:
                if table == "item" and item is None:
                    item = ranked[0].external_id
                if table == "account" and account is None:
                    account = ranked[0].external_id
            elif existed:
                missing.append(f"{entities[0]} {m3ter_id!r} ({table})")
    if missing and item is None and account is None:
        raise MissingAccountMappingError(
            f"line {line.id}: {', '.join(missing)} has Xero external mappings but none with "
            f"parent configuration {config.id!r} (enforce external mappings for config is "
            "on): add a mapping for this configuration, then resend the bill"
        )
    return LineCodes(item, account or default)


# ---- amounts ------------------------------------------------------------------------------


def places(value: Decimal) -> int:
    _, _, fraction = format_decimal(value).partition(".")
    return len(fraction)


def xero_amount(quantity: Decimal, unit: Decimal) -> Decimal:
    """What Xero computes for a line."""
    return (quantity * unit).quantize(CENT, rounding=ROUND_HALF_UP)


def priced(quantity: Decimal, amount: Decimal, exact: Decimal) -> tuple[Decimal, Decimal] | None:
    """(quantity, unit amount) with four places whose Xero amount is exactly `amount`, the
    bill's own quantity kept; None when no such unit amount exists."""
    if quantity == 0 or places(quantity) > 4 or abs(quantity.adjusted()) > 12:
        return None
    for target in (exact, amount):
        unit = (target / quantity).quantize(FOUR, rounding=ROUND_HALF_UP)
        if xero_amount(quantity, unit) == amount:
            return quantity, unit
    return None


def split_cents(exact: Sequence[Decimal], total: Decimal) -> list[Decimal]:
    """Cents for each part such that they add up to `total` (the cents of sum(exact)),
    each within a cent of its exact value (largest remainder)."""
    floors = [x.quantize(CENT, rounding=ROUND_FLOOR) for x in exact]
    left = int((total - sum(floors, Decimal(0))) / CENT)
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - floors[i]), i))
    out = list(floors)
    for i in order[:left]:
        out[i] += CENT
    return out


def _name(line: LineItem) -> str:
    if line.description:
        return line.description
    if line.product_name:
        return line.product_name
    return line.line_item_type.value.replace("_", " ").capitalize()


def _with_quantity(text: str, quantity: Decimal, unit: str | None, exact: Decimal) -> str:
    shown = f"{text} \u2014 {format_decimal(quantity, grouping=True)}"
    if unit:
        shown += f" {unit}"
    if quantity:
        each = (exact / quantity).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)
        shown += f" {TIMES} {format_decimal(each.normalize(), grouping=True)}"
    return shown


def _line(
    key: str,
    text: str,
    line: LineItem,
    quantity: Decimal,
    exact: Decimal,
    amount: Decimal,
    codes: LineCodes,
    tax_type: str | None,
) -> PlannedLine:
    found = priced(quantity, amount, exact)
    if found is None:
        q, u = Decimal(1), amount
        if quantity not in (0, 1):
            text = _with_quantity(text, quantity, line.unit, exact)
    else:
        q, u = found
    if len(text) > MAX_DESCRIPTION:
        raise FatalBillError(
            f"line {line.id}: the description is {len(text)} characters; Xero takes at most "
            f"{MAX_DESCRIPTION}: shorten it in the billing engine, then resend the bill"
        )
    return PlannedLine(
        key, text, q, u, xero_amount(q, u), codes.account_code, codes.item_code, tax_type
    )


def _band_lines(
    line: LineItem,
    config: XeroIntegrationConfig,
    mappings: Sequence[ExternalMapping],
    amount: Decimal,
) -> list[PlannedLine] | None:
    bands = [
        b for b in line.usage_per_pricing_band if (b.band_quantity or 0) != 0 or _band_total(b) != 0
    ]
    if not bands:
        return None
    exact = [_band_total(b) for b in bands]
    if sum(exact, Decimal(0)) != line.subtotal:
        return None  # the bands do not explain the line: one line for the product
    cents = split_cents(exact, amount)
    tax = config.destination_config.tax_type
    out = []
    for index, (band, band_exact, band_amount) in enumerate(zip(bands, exact, cents, strict=True)):
        band_id = band.pricing_band_id or str(index)
        codes = line_codes(line, band.pricing_band_id, config, mappings)
        text = _name(line)
        if band.lower_limit is not None:
            text += f" (from {format_decimal(band.lower_limit, grouping=True)})"
        quantity = band.band_quantity or Decimal(0)
        out.append(
            _line(f"{line.id}:{band_id}", text, line, quantity, band_exact, band_amount, codes, tax)
        )
    return out


def _band_total(band: PricingBandUsage) -> Decimal:
    if band.band_subtotal is not None:
        return band.band_subtotal
    quantity = band.band_quantity or Decimal(0)
    return quantity * (band.unit_price or Decimal(0)) + (band.fixed_price or Decimal(0))


# ---- the plan -----------------------------------------------------------------------------


def contact_for(
    customer_id: str, account: Account | None, config: XeroIntegrationConfig
) -> dict[str, str]:
    if config.entity_config.use_external_mapping_account_code:
        return {"ContactID": customer_id}
    name = (account.account_name if account and account.account_name else None) or customer_id
    return {"ContactNumber": customer_id[:50], "Name": name[:255]}


def plan_document(
    bill: Bill,
    account: Account | None,
    config: XeroIntegrationConfig,
    customer_id: str,
    mappings: Sequence[ExternalMapping] = (),
) -> XeroDocumentPlan:
    settings = config.destination_config
    if len(bill.id) > MAX_NUMBER:
        raise FatalBillError(
            f"bill id is {len(bill.id)} characters; a Xero invoice number takes at most "
            f"{MAX_NUMBER}"
        )
    reference = reference_for(bill)
    if len(reference) > MAX_REFERENCE:
        raise FatalBillError(
            f"the purchase order number makes a Reference of {len(reference)} characters; "
            f"Xero takes at most {MAX_REFERENCE}"
        )
    split = settings.split_usage_line_items is XeroSplitUsageLineItems.ITEM_PER_USAGE_BAND
    lines: list[PlannedLine] = []
    for item in prepare_lines(bill.line_items, config.entity_config):
        amount = item.subtotal.quantize(CENT, rounding=ROUND_HALF_UP)
        banded = _band_lines(item, config, mappings, amount) if split else None
        if banded is not None:
            lines.extend(banded)
            continue
        codes = line_codes(item, None, config, mappings)
        lines.append(
            _line(
                item.id,
                _name(item),
                item,
                item.quantity,
                item.subtotal,
                amount,
                codes,
                settings.tax_type,
            )
        )
    total = sum((line.amount for line in lines), Decimal("0.00"))
    kind = DocumentKind.INVOICE
    if total < 0:
        kind = DocumentKind.CREDIT_NOTE
        lines = [
            PlannedLine(
                line.key,
                line.description,
                line.quantity,
                -line.unit_amount,
                -line.amount,
                line.account_code,
                line.item_code,
                line.tax_type,
            )
            for line in lines
        ]
        total = -total
    issued = bill.bill_date or bill.end_date
    due = bill.due_date or issued
    if settings.invoice_status != "DRAFT" and kind is DocumentKind.INVOICE and due is None:
        raise FatalBillError(
            f"bill {bill.id} has no due date or bill date; Xero needs a due date to "
            f"{settings.invoice_status.lower()} an invoice: set one, or use invoice status DRAFT"
        )
    return XeroDocumentPlan(
        kind=kind,
        bill_id=bill.id,
        version=bill.version,
        number=bill.id,
        reference=reference,
        contact=contact_for(customer_id, account or bill.account, config),
        date=issued,
        due_date=due,
        currency=bill.currency,
        status=settings.invoice_status,
        line_amount_types=settings.line_amount_types,
        lines=tuple(lines),
        total=total,
        skip_reason=None if lines else "no lines left to send after excluded line item types",
    )
