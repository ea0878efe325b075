"""External mappings: an m3ter entity id -> the id of the same thing in a destination."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from shared.contracts.base import WireModel


class ExternalSystem(StrEnum):
    STRIPE = "Stripe"
    PADDLE = "Paddle"
    SALESFORCE = "Salesforce"
    XERO = "Xero"


class ExternalMapping(WireModel):
    id: str = Field(min_length=1)
    external_system: ExternalSystem
    external_table: str = Field(min_length=1)  # Customer, Contact, Item, Product, ...
    external_id: str = Field(min_length=1)
    # Explicit aliases: the generator would spell these "m3TerEntity"/"m3TerId".
    m3ter_entity: str = Field(min_length=1, alias="m3terEntity")  # Account, Product, ...
    m3ter_id: str = Field(min_length=1, alias="m3terId")
    integration_config_id: str | None = None  # the "parent configuration"
    version: int = 1
