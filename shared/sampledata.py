"""Realistic sample accounts and bills (seeded, so runs are reproducible).

A mix of line item types, decimal quantities, credits, several currencies (including
zero- and three-decimal ones) and custom fields for account filters."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from shared.contracts import Account, Address, Bill, BillStatus, LineItem, LineItemType

COUNTRIES = [
    ("US", "USD"),
    ("GB", "GBP"),
    ("DE", "EUR"),
    ("JP", "JPY"),
    ("BH", "BHD"),
    ("FR", "EUR"),
    ("CA", "CAD"),
]
TIERS = ["bronze", "silver", "gold"]
_CHARGES = [
    LineItemType.STANDING_CHARGE,
    LineItemType.USAGE,
    LineItemType.COUNTER_RUNNING_TOTAL_CHARGE,
    LineItemType.COUNTER_ADJUSTMENT_DEBIT,
    LineItemType.MINIMUM_SPEND,
    LineItemType.DEBIT_MEMO,
    LineItemType.COMMITMENT_FEE,
    LineItemType.OVERAGE_SURCHARGE,
    LineItemType.OVERAGE_USAGE,
    LineItemType.BALANCE_FEE,
    LineItemType.AD_HOC,
    LineItemType.MANUAL_ADJUSTMENT,
]
_CREDITS = [
    LineItemType.COUNTER_ADJUSTMENT_CREDIT,
    LineItemType.USAGE_CREDIT,
    LineItemType.MINIMUM_SPEND_REFUND,
    LineItemType.CREDIT_DEDUCTION,
    LineItemType.CREDIT_MEMO,
    LineItemType.COMMITMENT_CONSUMED,
    LineItemType.BALANCE_CONSUMED,
]
_EXPONENT = {"JPY": 0, "BHD": 3}


def make_accounts(count: int, seed: int = 7) -> list[Account]:
    rng = random.Random(seed)
    accounts = []
    for i in range(1, count + 1):
        country, currency = COUNTRIES[(i - 1) % len(COUNTRIES)]
        accounts.append(
            Account(
                id=f"acc-{i:04d}",
                account_name=f"Customer {i} {rng.choice(['Ltd', 'Inc', 'GmbH', 'KK'])}",
                account_code=f"CUST{i:04d}",
                currency=currency,
                address=Address(
                    address_line1=f"{i} Market St",
                    locality="Springfield",
                    post_code=f"{10000 + i}",
                    country=country,
                ),
                custom_fields={
                    "country": country,
                    "tier": TIERS[i % 3],
                    "seats": rng.randint(1, 500),
                },
            )
        )
    return accounts


def _quantize(value: Decimal, currency: str) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-_EXPONENT.get(currency, 2)))


def make_bill(
    account: Account,
    number: int,
    rng: random.Random,
    lines: int = 20,
    version: int = 1,
    embed_account: bool = True,
) -> Bill:
    currency = account.currency or "USD"
    start = date(2026, 10, 1)
    end = date(2026, 11, 1)
    items: list[LineItem] = []
    for j in range(lines):
        credit = j % 7 == 6
        kind = rng.choice(_CREDITS if credit else _CHARGES)
        decimal_qty = rng.random() < 0.3
        quantity = (
            Decimal(rng.randint(1, 500_000)) / 100 if decimal_qty else Decimal(rng.randint(0, 5000))
        )
        unit_price = Decimal(rng.randint(1, 20_000)) / 10_000
        subtotal = _quantize(quantity * unit_price, currency)
        if credit:
            subtotal = -abs(subtotal)
        items.append(
            LineItem(
                id=f"li-{number}-{j}",
                line_item_type=kind,
                description=f"{kind.value.replace('_', ' ').title()} {j}",
                quantity=quantity,
                unit="unit",
                average_unit_price=unit_price,
                subtotal=subtotal,
                currency=currency,
                product_id=f"prod-{j % 5}",
                product_code=f"P{j % 5}",
                product_name=f"Product {j % 5}",
                aggregation_id=f"agg-{rng.randint(1, 9)}" if kind is LineItemType.USAGE else None,
                service_period_start_date=datetime(2026, 10, 1, tzinfo=UTC),
                service_period_end_date=datetime(2026, 11, 1, tzinfo=UTC),
            )
        )
    total = sum((i.subtotal for i in items), Decimal(0))
    return Bill(
        id=f"bill-{number:06d}",
        version=version,
        account_id=account.id,
        account_code=account.account_code,
        bill_date=end,
        due_date=end + timedelta(days=30),
        start_date=start,
        end_date=end,
        currency=currency,
        status=BillStatus.PENDING,
        bill_total=total,
        purchase_order_number=f"PO-{number:05d}" if number % 3 == 0 else None,
        billing_frequency="MONTHLY",
        last_calculated_date=datetime(2026, 11, 1, 2, 0, tzinfo=UTC),
        account=account if embed_account else None,
        line_items=items,
    )


def make_bills(
    accounts: list[Account], count: int, lines: int = 20, seed: int = 11, embed_account: bool = True
) -> list[Bill]:
    rng = random.Random(seed)
    return [
        make_bill(accounts[i % len(accounts)], i + 1, rng, lines, embed_account=embed_account)
        for i in range(count)
    ]
