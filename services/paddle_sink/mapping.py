"""A prepared bill -> one Paddle transaction (pure: no I/O, no clock, no environment).

A bill becomes one manually collected transaction left as a draft (m3ter's page: "invoices
created in draft"): `billing_details.payment_terms` from the bill's due date, the purchase
order number, non-catalog items (a price with `unit_price.amount` in minor units and an
integer quantity; a decimal quantity, or an amount the quantity does not divide, folds
into quantity 1 with the true quantity in the description), the product from the external
mappings (Product), the configuration's product or an inline one, and the price's
quantity range widened when a quantity is above Paddle's default 1-100.

Everything Paddle would refuse is refused here, before the first call, as a validation
error naming the line or field: a negative line (the page's constraint; Paddle has no
negative items), more than 100 items, a currency other than USD, EUR or GBP for manual
collection, a line in another currency."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from shared.contracts import Bill, ExternalMapping, ExternalSystem, LineItem
from shared.contracts.config import PaddleCollectionMode, PaddleIntegrationConfig
from shared.money import format_decimal, minor_unit_exponent, to_minor_units
from shared.sinks.errors import FatalBillError, MissingAccountMappingError

MAX_ITEMS = 100  # Paddle: 1-100 items per transaction
DEFAULT_MAX_QUANTITY = 100  # a price's quantity range defaults to 1-100
MAX_QUANTITY = 999_999_999  # the most a price's quantity range can say
MANUAL_CURRENCIES = ("USD", "EUR", "GBP")
# Paddle's supported currencies (specs/paddle_billing.yaml, currency_code).
CURRENCIES = frozenset(
    "USD EUR GBP JPY AUD CAD CHF HKD SGD SEK ARS BRL CNY COP CZK DKK HUF ILS INR KRW MXN "
    "NOK NZD PLN RUB THB TRY TWD UAH VND ZAR".split()
)
TAX_CATEGORIES = frozenset(
    "digital-goods ebooks implementation-services professional-services saas "
    "software-programming-services standard training-services website-hosting".split()
)
DESCRIPTION_MAX = 500  # price.description: 2-500 characters
NAME_MAX = 150  # price.name
PRODUCT_NAME_MAX = 200
PO_MAX = 100  # billing_details.purchase_order_number
TIMES = "\u00d7"

# custom_data keys billsync writes on a transaction (and looks a transaction up by).
BILL_ID = "billsync_bill_id"
BILL_VERSION = "billsync_bill_version"
CONFIG_ID = "billsync_config_id"
ACCOUNT_ID = "billsync_account_id"
LINE_ID = "billsync_line_id"

_IDS = {
    "Customer": re.compile(r"^ctm_[a-z\d]{26}$"),
    "Address": re.compile(r"^add_[a-z\d]{26}$"),
    "Business": re.compile(r"^biz_[a-z\d]{26}$"),
    "Product": re.compile(r"^pro_[a-z\d]{26}$"),
}


@dataclass(frozen=True)
class Parties:
    """Who the transaction is for: Paddle customer, address and business ids."""

    customer_id: str
    address_id: str | None
    business_id: str | None


@dataclass(frozen=True)
class PlannedItem:
    line_id: str
    name: str  # shown to the customer
    description: str  # the price's internal description
    quantity: int
    unit_amount: int  # minor units
    product_id: str | None  # a catalog product, or None for an inline product
    product_name: str
    max_quantity: int | None  # the price's quantity range maximum when above 100

    @property
    def amount(self) -> int:
        return self.unit_amount * self.quantity


@dataclass(frozen=True)
class PaddleTransactionPlan:
    parties: Parties
    currency: str
    collection_mode: PaddleCollectionMode
    payment_terms: tuple[str, int] | None  # (interval, frequency); manual collection only
    purchase_order_number: str | None
    billing_period: tuple[str, str] | None  # (starts_at, ends_at), RFC 3339
    items: tuple[PlannedItem, ...]
    custom_data: Mapping[str, str]
    tax_category: str

    @property
    def total(self) -> int:
        return sum(i.amount for i in self.items)

    def body(self) -> dict[str, Any]:
        """The JSON body of `POST /transactions` and of the `PATCH` that updates a draft."""
        body: dict[str, Any] = {
            "customer_id": self.parties.customer_id,
            "address_id": self.parties.address_id,
            "business_id": self.parties.business_id,
            "currency_code": self.currency,
            "collection_mode": self.collection_mode.value,
            "custom_data": dict(self.custom_data),
            "items": [self._item(i) for i in self.items],
        }
        if self.payment_terms is not None:
            interval, frequency = self.payment_terms
            details: dict[str, Any] = {
                "enable_checkout": False,
                "payment_terms": {"interval": interval, "frequency": frequency},
            }
            if self.purchase_order_number:
                details["purchase_order_number"] = self.purchase_order_number
            body["billing_details"] = details
        if self.billing_period is not None:
            starts, ends = self.billing_period
            body["billing_period"] = {"starts_at": starts, "ends_at": ends}
        return body

    def _item(self, item: PlannedItem) -> dict[str, Any]:
        price: dict[str, Any] = {
            "description": item.description,
            "name": item.name,
            "unit_price": {"amount": str(item.unit_amount), "currency_code": self.currency},
            "custom_data": {LINE_ID: item.line_id},
        }
        if item.max_quantity is not None:
            price["quantity"] = {"minimum": 1, "maximum": item.max_quantity}
        if item.product_id is not None:
            price["product_id"] = item.product_id
        else:
            price["product"] = {"name": item.product_name, "tax_category": self.tax_category}
        return {"quantity": item.quantity, "price": price}


# ---- parties ----------------------------------------------------------------------------


def _rank(m: ExternalMapping, config_id: str) -> tuple[int, str]:
    parent = (
        0 if m.integration_config_id == config_id else 1 if m.integration_config_id is None else 2
    )
    return parent, m.id


def _pick(
    mappings: Iterable[ExternalMapping],
    config: PaddleIntegrationConfig,
    entity: str,
    m3ter_id: str,
    table: str,
) -> ExternalMapping | None:
    """The external mapping of `entity` `m3ter_id` to Paddle `table`, by the framework's
    rule: parented to this configuration first, then unparented, then parented elsewhere
    ("enforce external mappings for config": only parented to this one)."""
    found = [
        m
        for m in mappings
        if m.external_system is ExternalSystem.PADDLE
        and m.m3ter_entity.lower() == entity.lower()
        and m.m3ter_id == m3ter_id
        and m.external_table.lower() == table.lower()
    ]
    if config.entity_config.enforce_external_mappings_for_config:
        found = [m for m in found if m.integration_config_id == config.id]
    return min(found, key=lambda m: _rank(m, config.id), default=None)


def _missing(account_id: str, table: str, config: PaddleIntegrationConfig, why: str) -> str:
    scope = (
        f" with parent configuration {config.id!r}"
        if config.entity_config.enforce_external_mappings_for_config
        else ""
    )
    return (
        f"no usable Paddle {table} mapping for account {account_id!r}{scope}: {why}; create an "
        f"external mapping (externalSystem Paddle, m3terEntity Account, m3terId {account_id}, "
        f"externalTable {table}) to the Paddle {table.lower()} id, then resend the bill"
    )


def resolve_parties(
    account_id: str, config: PaddleIntegrationConfig, mappings: Iterable[ExternalMapping]
) -> Parties:
    """Customer, address and business from the account's Paddle external mappings
    (MissingAccountMappingError, before any call, when one that is needed is missing).

    With "use external mapping account code" off, the m3ter account id itself is the Paddle
    customer id (so it must be one); address and business always come from mappings."""
    rows = list(mappings)
    if config.entity_config.use_external_mapping_account_code:
        mapped = _pick(rows, config, "Account", account_id, "Customer")
        if mapped is None:
            raise MissingAccountMappingError(
                _missing(account_id, "Customer", config, "there is none")
            )
        customer = mapped.external_id
    else:
        customer = account_id
    if not _IDS["Customer"].match(customer):
        raise MissingAccountMappingError(
            _missing(
                account_id,
                "Customer",
                config,
                f"{customer!r} is not a Paddle customer id (ctm_ and 26 characters)"
                + (
                    ""
                    if config.entity_config.use_external_mapping_account_code
                    else " and useExternalMappingAccountCode is off, so the account id is used"
                ),
            )
        )
    found: dict[str, str | None] = {}
    for table in ("Address", "Business"):
        mapped = _pick(rows, config, "Account", account_id, table)
        if mapped is not None and not _IDS[table].match(mapped.external_id):
            raise MissingAccountMappingError(
                _missing(
                    account_id,
                    table,
                    config,
                    f"mapping {mapped.id} holds {mapped.external_id!r}, not a Paddle "
                    f"{table.lower()} id",
                )
            )
        found[table] = mapped.external_id if mapped else None
    manual = config.destination_config.collection_mode is PaddleCollectionMode.MANUAL
    if manual and found["Address"] is None:
        raise MissingAccountMappingError(
            _missing(
                account_id, "Address", config, "manual collection needs the customer's address"
            )
        )
    return Parties(customer, found["Address"], found["Business"])


def product_ids(
    bill: Bill, config: PaddleIntegrationConfig, mappings: Iterable[ExternalMapping]
) -> dict[str, str]:
    """m3ter product id -> Paddle product id, from Product external mappings."""
    rows = list(mappings)
    out: dict[str, str] = {}
    for pid in {li.product_id for li in bill.line_items if li.product_id}:
        mapped = _pick(rows, config, "Product", pid, "Product")
        if mapped is None:
            continue
        if not _IDS["Product"].match(mapped.external_id):
            raise FatalBillError(
                f"external mapping {mapped.id} maps product {pid!r} to {mapped.external_id!r}, "
                "which is not a Paddle product id (pro_ and 26 characters); fix the mapping"
            )
        out[pid] = mapped.external_id
    return out


# ---- the plan -----------------------------------------------------------------------------


def _label(line: LineItem, index: int) -> str:
    what = f" ({line.description})" if line.description else ""
    return f"line {index + 1} [{line.id}]{what}"


def _fit(text: str, limit: int, suffix: str = "") -> str:
    room = limit - len(suffix)
    if len(text) > room:
        text = text[: room - 1] + "\u2026"
    return text + suffix


def payment_terms(bill: Bill, config: PaddleIntegrationConfig) -> tuple[str, int]:
    """Days from the bill date to its due date; the configuration's terms without them."""
    if bill.due_date is not None and bill.bill_date is not None:
        return "day", max(1, (bill.due_date - bill.bill_date).days)
    dest = config.destination_config
    return dest.payment_terms_interval, dest.payment_terms_frequency


def _instant(day: date) -> str:
    return datetime.combine(day, time(0), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _item(
    line: LineItem,
    index: int,
    currency: str,
    config: PaddleIntegrationConfig,
    products: Mapping[str, str],
) -> PlannedItem:
    label = _label(line, index)
    if line.currency and line.currency.upper() != currency:
        raise FatalBillError(
            f"{label} is in {line.currency.upper()} but the bill is in {currency}; a Paddle "
            "transaction has one currency"
        )
    if line.subtotal < 0:
        raise FatalBillError(
            f"{label} has a negative amount {format_decimal(line.subtotal)} {currency}: the "
            "Paddle integration does not support negative line items (credits are Paddle "
            "adjustments on a billed transaction); remove or exclude the credit line type "
            "(excludedLineItemTypes), then resend the bill"
        )
    amount = to_minor_units(line.subtotal, currency)
    quantity = line.quantity
    text = line.description or line.product_name or line.line_item_type.value.replace("_", " ")
    whole = quantity == quantity.to_integral_value() and 1 <= quantity <= MAX_QUANTITY
    if whole and amount % int(quantity) == 0:
        count, unit, suffix = int(quantity), amount // int(quantity), ""
    else:
        # Paddle quantities are integers and the total is unit x quantity: charge the
        # exact amount once and say the real quantity.
        average = line.average_unit_price
        if average is None and quantity:
            average = (line.subtotal / quantity).quantize(Decimal("1E-10")).normalize()
        price = f" {TIMES} {format_decimal(average)} {currency}" if average is not None else ""
        count, unit, suffix = 1, amount, f" \u2014 {format_decimal(quantity)}{price}"
    if len(text) + len(suffix) < 2:
        text = f"{text} {line.line_item_type.value}"
    product_id = config.destination_config.product_id
    if line.product_id and line.product_id in products:
        product_id = products[line.product_id]
    return PlannedItem(
        line_id=line.id,
        name=_fit(text, NAME_MAX, suffix),
        description=_fit(text, DESCRIPTION_MAX, suffix),
        quantity=count,
        unit_amount=unit,
        product_id=product_id,
        product_name=_fit(line.product_name or text, PRODUCT_NAME_MAX),
        max_quantity=count if count > DEFAULT_MAX_QUANTITY else None,
    )


def plan_transaction(
    bill: Bill,
    config: PaddleIntegrationConfig,
    parties: Parties,
    products: Mapping[str, str],
) -> PaddleTransactionPlan:
    """The transaction for `bill` (FatalBillError naming the line or field otherwise)."""
    dest = config.destination_config
    currency = bill.currency.upper()
    manual = dest.collection_mode is PaddleCollectionMode.MANUAL
    if manual and currency not in MANUAL_CURRENCIES:
        raise FatalBillError(
            f"currency: the bill is in {currency} but Paddle's manual collection takes "
            f"{', '.join(MANUAL_CURRENCIES)} only; bill this account in one of them"
        )
    if currency not in CURRENCIES:
        raise FatalBillError(f"currency: Paddle does not support {currency}")
    minor_unit_exponent(currency)  # an unknown code is a ValueError here, not at Paddle
    if dest.tax_category not in TAX_CATEGORIES:
        raise FatalBillError(
            f"destinationConfig.taxCategory: {dest.tax_category!r} is not a Paddle tax "
            f"category ({', '.join(sorted(TAX_CATEGORIES))})"
        )
    if not bill.line_items:
        raise FatalBillError(
            "line items: the bill has none after exclusions; a Paddle transaction needs 1-100"
        )
    negative = [_label(li, i) for i, li in enumerate(bill.line_items) if li.subtotal < Decimal(0)]
    if len(negative) > 1:
        raise FatalBillError(
            f"{len(negative)} negative line items ({'; '.join(negative)}): the Paddle "
            "integration does not support negative line items; remove or exclude them "
            "(excludedLineItemTypes), then resend the bill"
        )
    if len(bill.line_items) > MAX_ITEMS:
        raise FatalBillError(
            f"line items: the bill has {len(bill.line_items)} lines but a Paddle transaction "
            f"takes at most {MAX_ITEMS}; exclude line types (excludedLineItemTypes) or split "
            "the bill"
        )
    items = tuple(_item(li, i, currency, config, products) for i, li in enumerate(bill.line_items))
    po = bill.purchase_order_number or None
    if po is not None and len(po) > PO_MAX:
        raise FatalBillError(
            f"purchaseOrderNumber: {len(po)} characters, Paddle takes at most {PO_MAX}"
        )
    period = None
    if bill.start_date is not None and bill.end_date is not None:
        period = (_instant(bill.start_date), _instant(bill.end_date))
    return PaddleTransactionPlan(
        parties=parties,
        currency=currency,
        collection_mode=dest.collection_mode,
        payment_terms=payment_terms(bill, config) if manual else None,
        purchase_order_number=po if manual else None,
        billing_period=period,
        items=items,
        custom_data={
            BILL_ID: bill.id,
            BILL_VERSION: str(bill.version),
            CONFIG_ID: config.id,
            ACCOUNT_ID: bill.account_id,
        },
        tax_category=dest.tax_category,
    )
