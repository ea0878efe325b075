"""Account snapshots (compacted `accounts` topic, or embedded in a bill)."""

from __future__ import annotations

from pydantic import Field

from shared.contracts.base import DecimalStr, WireModel

# Numbers stay Decimal (bounded like every amount): custom fields can feed money mappings.
CustomFieldValue = str | bool | int | DecimalStr | None


class Address(WireModel):
    address_line1: str | None = None
    address_line2: str | None = None
    address_line3: str | None = None
    address_line4: str | None = None
    locality: str | None = None
    region: str | None = None
    post_code: str | None = None
    country: str | None = None


class Account(WireModel):
    id: str = Field(min_length=1)
    account_name: str | None = None
    account_code: str | None = None
    address: Address | None = None
    currency: str | None = None
    custom_fields: dict[str, CustomFieldValue] = Field(default_factory=dict)
    email_address: str | None = None
