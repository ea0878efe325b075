"""Integration configurations: global, entity and per-destination settings.

The per-destination shape is a discriminated union on `destination`, so a
Stripe configuration can only carry Stripe settings and a typo is refused.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter, field_validator, model_validator

from shared.contracts.base import StrictWireModel
from shared.contracts.bill import LineItemType


class Destination(StrEnum):
    STRIPE = "STRIPE"
    STRIPE_TEST = "STRIPE_TEST"
    PADDLE = "PADDLE"
    PADDLE_SANDBOX = "PADDLE_SANDBOX"
    SALESFORCE = "SALESFORCE"
    XERO = "XERO"

    @property
    def family(self) -> str:
        """The sink that serves this destination: stripe, paddle, salesforce or xero."""
        return self.value.split("_")[0].lower()


class SortLineItemsBy(StrEnum):
    NONE = "NONE"
    SUBTOTAL = "SUBTOTAL"
    AGGREGATION_ID = "AGGREGATION_ID"


class EntityConfig(StrictWireModel):
    only_send_bill_on_approval: bool = False
    use_external_mapping_account_code: bool = False
    enforce_external_mappings_for_config: bool = False
    excluded_line_item_types: list[LineItemType] = Field(default_factory=list)
    sort_line_items_by: SortLineItemsBy = SortLineItemsBy.NONE
    account_filter: str | None = None

    @field_validator("account_filter")
    @classmethod
    def _filter_parses(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from shared.filters import parse_filter  # local: keeps contracts importable alone

        parse_filter(value)  # raises FilterSyntaxError (a ValueError) with position
        return value


# ---- destination settings -------------------------------------------------------------


class StripeMappingTarget(StrEnum):
    INVOICE_CUSTOM_FIELD = "invoice.custom_field"
    INVOICE_METADATA = "invoice.metadata"
    LINE_METADATA = "line.metadata"
    LINE_PRODUCT = "line.product"  # Metronome's "invoiceitem.price": a Stripe product per line


class StripeFieldMapping(StrictWireModel):
    """Copy a value from the bill, account or product custom fields into Stripe.

    `source` is a path: `bill.<field>`, `bill.customFields.<name>`, `account.<field>`,
    `account.customFields.<name>`, `product.customFields.<name>` (line targets only).
    """

    source: str = Field(min_length=1, pattern=r"^(bill|account|product)\.[A-Za-z0-9_.\- ]+$")
    target: StripeMappingTarget
    name: str | None = Field(default=None, min_length=1, max_length=40)


STRIPE_MAX_CUSTOM_FIELDS = 4
STRIPE_METADATA_KEY_MAX = 40
RESERVED_METADATA_PREFIX = "billsync_"
_LINE_TARGETS = {StripeMappingTarget.LINE_METADATA, StripeMappingTarget.LINE_PRODUCT}


def stripe_mapping_problems(
    mappings: list[StripeFieldMapping], po_number_custom_field: str | None = None
) -> list[str]:
    """Shape errors in Stripe field mappings, found when a configuration is written (the
    sink checks values against Stripe's limits per bill)."""
    problems: list[str] = []
    for index, mapping in enumerate(mappings):
        name = f" '{mapping.name}'" if mapping.name else ""
        where = f"fieldMappings[{index}] ({mapping.source} -> {mapping.target.value}{name})"
        if mapping.source.startswith("product.") and mapping.target not in _LINE_TARGETS:
            problems.append(f"{where}: product fields can only feed line targets")
        if mapping.target is StripeMappingTarget.LINE_PRODUCT:
            continue
        if not mapping.name:
            problems.append(f"{where}: needs a name (the Stripe field or metadata key)")
        elif mapping.target is not StripeMappingTarget.INVOICE_CUSTOM_FIELD:
            key = mapping.name
            if len(key) > STRIPE_METADATA_KEY_MAX:
                problems.append(
                    f"{where}: metadata keys are at most {STRIPE_METADATA_KEY_MAX} characters"
                )
            if "[" in key or "]" in key:
                problems.append(f"{where}: Stripe metadata keys cannot contain square brackets")
            if key.startswith(RESERVED_METADATA_PREFIX):
                problems.append(
                    f"{where}: keys starting with {RESERVED_METADATA_PREFIX!r} are billsync's own"
                )
    custom = sum(m.target is StripeMappingTarget.INVOICE_CUSTOM_FIELD for m in mappings)
    custom += 1 if po_number_custom_field else 0
    if custom > STRIPE_MAX_CUSTOM_FIELDS:
        problems.append(
            f"{custom} invoice custom fields (poNumberCustomField included); Stripe allows "
            f"{STRIPE_MAX_CUSTOM_FIELDS}"
        )
    return problems


class CollectionMethod(StrEnum):
    CHARGE_AUTOMATICALLY = "charge_automatically"
    SEND_INVOICE = "send_invoice"


class StripeDestinationConfig(StrictWireModel):
    # m3ter's settings
    create_stripe_invoice: bool = True
    price_data_product_id: str | None = None
    po_number_custom_field: str | None = Field(default=None, max_length=40)
    send_due_date: bool = False
    # Metronome's invoice settings
    collection_method: CollectionMethod = CollectionMethod.CHARGE_AUTOMATICALLY
    # Account custom field whose value (charge_automatically|send_invoice) overrides per customer.
    collection_method_custom_field: str | None = "stripe_collection_method"
    days_until_due: int = Field(default=30, ge=0, le=3650)
    leave_invoices_as_drafts: bool = False
    skip_zero_total_invoices: bool = False
    show_zero_quantity_lines: bool = False
    always_show_price_and_quantity: bool = False
    # Send non-integer quantities as Stripe's quantity_decimal on Price lines; off: such a
    # bill's lines are quantity 1 with the real quantity in the description (Metronome's way).
    send_decimal_quantities: bool = False
    company_name: str = Field(default="Usage charges", min_length=1, max_length=200)
    field_mappings: list[StripeFieldMapping] = Field(default_factory=list)

    @model_validator(mode="after")
    def _mappings_fit_stripe(self) -> StripeDestinationConfig:
        problems = stripe_mapping_problems(self.field_mappings, self.po_number_custom_field)
        if problems:
            raise ValueError("; ".join(problems))
        return self


class PaddleCollectionMode(StrEnum):
    MANUAL = "manual"
    AUTOMATIC = "automatic"


class PaddleDestinationConfig(StrictWireModel):
    collection_mode: PaddleCollectionMode = PaddleCollectionMode.MANUAL
    payment_terms_interval: Literal["day", "week", "month", "year"] = "day"
    payment_terms_frequency: int = Field(default=30, ge=1, le=365)
    tax_category: str = "standard"
    product_id: str | None = None


class SalesforceTriggerType(StrEnum):
    EVENT = "EVENT"
    SCHEDULE = "SCHEDULE"


# Bill and line properties a Salesforce field mapping can name (`billFieldMapping`,
# `lineFieldMapping`); services/salesforce_sink/mapping.py holds their default fields.
SALESFORCE_BILL_PROPERTIES = (
    "name",
    "version",
    "accountCode",
    "billDate",
    "dueDate",
    "startDate",
    "endDate",
    "currency",
    "status",
    "billTotal",
    "purchaseOrderNumber",
    "sequentialInvoiceNumber",
    "externalInvoiceReference",
    "billingFrequency",
    "lastCalculatedDate",
)
SALESFORCE_LINE_PROPERTIES = (
    "name",
    "position",
    "lineItemType",
    "description",
    "quantity",
    "unit",
    "averageUnitPrice",
    "subtotal",
    "currency",
    "productId",
    "productCode",
    "productName",
    "aggregationId",
    "servicePeriodStartDate",
    "servicePeriodEndDate",
)
_SF_OBJECT = r"^[A-Za-z][A-Za-z0-9_]{0,79}$"
_SF_FIELD = r"^[A-Za-z][A-Za-z0-9_]{0,79}$"


class SalesforceDestinationConfig(StrictWireModel):
    trigger_type: SalesforceTriggerType = SalesforceTriggerType.EVENT
    # SCHEDULE: bills collect and go as one batch per interval (the page: every hour).
    schedule_interval_seconds: int = Field(default=3600, ge=1, le=86400)
    api_version: str = Field(default="v67.0", pattern=r"^v\d+\.\d$")
    bill_object: str = Field(default="Billsync_Bill__c", pattern=_SF_OBJECT)
    bill_external_id_field: str = Field(default="Billsync_Bill_Id__c", pattern=_SF_FIELD)
    line_object: str = Field(default="Billsync_Bill_Line__c", pattern=_SF_OBJECT)
    line_external_id_field: str = Field(default="Billsync_Line_Id__c", pattern=_SF_FIELD)
    # The line's lookup (or master-detail) to its bill; its relationship is `..__r`.
    line_bill_field: str = Field(default="Bill__c", pattern=r"^[A-Za-z][A-Za-z0-9_]{0,76}__c$")
    # The bill's lookup to Account; null: bills are not parented to an Account.
    account_lookup_field: str | None = Field(
        default="Account__c", pattern=r"^[A-Za-z][A-Za-z0-9_]{0,76}__c$"
    )
    # Without "use external mapping account code" the Account is found by the m3ter
    # account id held in this External ID field on Account.
    account_external_id_field: str = Field(default="Billsync_Account_Id__c", pattern=_SF_FIELD)
    # property -> Salesforce field, over the defaults; null leaves the property out.
    bill_field_mapping: dict[str, str | None] = Field(default_factory=dict)
    line_field_mapping: dict[str, str | None] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _mapping_names_known(self) -> SalesforceDestinationConfig:
        problems = []
        for where, mapping, known in (
            ("billFieldMapping", self.bill_field_mapping, SALESFORCE_BILL_PROPERTIES),
            ("lineFieldMapping", self.line_field_mapping, SALESFORCE_LINE_PROPERTIES),
        ):
            for prop, target in mapping.items():
                if prop not in known:
                    problems.append(
                        f"{where}: unknown property {prop!r}; one of {', '.join(known)}"
                    )
                elif target is not None and not re.match(_SF_FIELD, target):
                    problems.append(
                        f"{where}.{prop}: {target!r} is not a Salesforce field API name"
                    )
        if problems:
            raise ValueError("; ".join(problems))
        return self


class XeroSplitUsageLineItems(StrEnum):
    ITEM_PER_USAGE_BAND = "ITEM_PER_USAGE_BAND"
    ITEM_PER_PRODUCT = "ITEM_PER_PRODUCT"


class XeroDestinationConfig(StrictWireModel):
    split_usage_line_items: XeroSplitUsageLineItems = XeroSplitUsageLineItems.ITEM_PER_PRODUCT
    invoice_status: Literal["DRAFT", "SUBMITTED", "AUTHORISED"] = "DRAFT"
    sales_account_code: str = "200"
    tax_type: str | None = None
    # Whether line amounts include tax (Xero's LineAmountTypes).
    line_amount_types: Literal["Exclusive", "Inclusive", "NoTax"] = "Exclusive"


# ---- the configuration ----------------------------------------------------------------


class _ConfigBase(StrictWireModel):
    id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:\-]+$")
    name: str = Field(default="", max_length=200)
    entity_type: Literal["Bill"] = "Bill"
    enabled: bool = True
    integration_credentials_id: str | None = None
    version: int = Field(default=1, ge=1)
    account_ids: list[str] = Field(default_factory=list)
    restricted_account_ids: list[str] = Field(default_factory=list)
    disabled_notification_user_ids: list[str] = Field(default_factory=list)
    entity_config: EntityConfig = Field(default_factory=EntityConfig)


class StripeIntegrationConfig(_ConfigBase):
    destination: Literal[Destination.STRIPE, Destination.STRIPE_TEST]
    destination_config: StripeDestinationConfig = Field(default_factory=StripeDestinationConfig)


class PaddleIntegrationConfig(_ConfigBase):
    destination: Literal[Destination.PADDLE, Destination.PADDLE_SANDBOX]
    destination_config: PaddleDestinationConfig = Field(default_factory=PaddleDestinationConfig)


class SalesforceIntegrationConfig(_ConfigBase):
    destination: Literal[Destination.SALESFORCE]
    destination_config: SalesforceDestinationConfig = Field(
        default_factory=SalesforceDestinationConfig
    )


class XeroIntegrationConfig(_ConfigBase):
    destination: Literal[Destination.XERO]
    destination_config: XeroDestinationConfig = Field(default_factory=XeroDestinationConfig)


IntegrationConfig = Annotated[
    StripeIntegrationConfig
    | PaddleIntegrationConfig
    | SalesforceIntegrationConfig
    | XeroIntegrationConfig,
    Field(discriminator="destination"),
]
IntegrationConfigAdapter: TypeAdapter[IntegrationConfig] = TypeAdapter(IntegrationConfig)
IntegrationConfigListAdapter: TypeAdapter[list[IntegrationConfig]] = TypeAdapter(
    list[IntegrationConfig]
)


def parse_config(data: object) -> IntegrationConfig:
    """Validate one configuration in wire shape (raises pydantic.ValidationError)."""
    if isinstance(data, (bytes, str)):
        return IntegrationConfigAdapter.validate_json(data)
    return IntegrationConfigAdapter.validate_python(data)
