"""Bills and line items as the billing engine publishes them (m3ter field names)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import Field, field_validator

from shared.contracts.account import Account, CustomFieldValue
from shared.contracts.base import DecimalStr, WireModel


class LineItemType(StrEnum):
    STANDING_CHARGE = "STANDING_CHARGE"
    USAGE = "USAGE"
    COUNTER_RUNNING_TOTAL_CHARGE = "COUNTER_RUNNING_TOTAL_CHARGE"
    COUNTER_ADJUSTMENT_DEBIT = "COUNTER_ADJUSTMENT_DEBIT"
    COUNTER_ADJUSTMENT_CREDIT = "COUNTER_ADJUSTMENT_CREDIT"
    USAGE_CREDIT = "USAGE_CREDIT"
    MINIMUM_SPEND = "MINIMUM_SPEND"
    MINIMUM_SPEND_REFUND = "MINIMUM_SPEND_REFUND"
    CREDIT_DEDUCTION = "CREDIT_DEDUCTION"
    MANUAL_ADJUSTMENT = "MANUAL_ADJUSTMENT"
    CREDIT_MEMO = "CREDIT_MEMO"
    DEBIT_MEMO = "DEBIT_MEMO"
    COMMITMENT_CONSUMED = "COMMITMENT_CONSUMED"
    COMMITMENT_FEE = "COMMITMENT_FEE"
    OVERAGE_SURCHARGE = "OVERAGE_SURCHARGE"
    OVERAGE_USAGE = "OVERAGE_USAGE"
    BALANCE_CONSUMED = "BALANCE_CONSUMED"
    BALANCE_FEE = "BALANCE_FEE"
    AD_HOC = "AD_HOC"


class BillStatus(StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"


class PricingBandUsage(WireModel):
    pricing_band_id: str | None = None
    lower_limit: DecimalStr | None = None
    band_quantity: DecimalStr | None = None
    unit_price: DecimalStr | None = None
    band_subtotal: DecimalStr | None = None
    fixed_price: DecimalStr | None = None


class LineItem(WireModel):
    id: str
    line_item_type: LineItemType
    description: str | None = None
    quantity: DecimalStr = Decimal("0")
    unit: str | None = None
    average_unit_price: DecimalStr | None = None
    subtotal: DecimalStr
    currency: str | None = None
    product_id: str | None = None
    product_code: str | None = None
    product_name: str | None = None
    aggregation_id: str | None = None
    plan_id: str | None = None
    pricing_id: str | None = None
    service_period_start_date: datetime | None = None
    service_period_end_date: datetime | None = None
    usage_per_pricing_band: list[PricingBandUsage] = Field(default_factory=list)
    # Snapshot of the product's custom fields, for mapping rules (e.g. stripe_product_id).
    product_custom_fields: dict[str, CustomFieldValue] = Field(default_factory=dict)


class Bill(WireModel):
    id: str = Field(min_length=1)
    version: int = Field(ge=0)
    account_id: str = Field(min_length=1)
    account_code: str | None = None
    bill_date: date | None = None
    due_date: date | None = None
    start_date: date | None = None
    end_date: date | None = None
    currency: str = Field(min_length=3, max_length=3)
    status: BillStatus = BillStatus.PENDING
    locked: bool = False
    bill_total: DecimalStr | None = None
    purchase_order_number: str | None = None
    external_invoice_reference: str | None = None
    sequential_invoice_number: str | None = None
    billing_frequency: str | None = None
    last_calculated_date: datetime | None = None
    account: Account | None = None
    line_items: list[LineItem] = Field(default_factory=list)
    custom_fields: dict[str, CustomFieldValue] = Field(default_factory=dict)

    @field_validator("currency")
    @classmethod
    def _upper_currency(cls, value: str) -> str:
        return value.upper()
