"""The configuration form: what each destination is, each setting's help text (from the
vendor pages in the reference docs), and the conversion between an HTML form and the
configuration's wire shape. Validation is the API's own (validation.parse_checked)."""

from __future__ import annotations

import json
import re
import types
import typing
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, Literal

from multidict import MultiDictProxy
from pydantic import BaseModel
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo

from shared.contracts import Destination, IntegrationConfig
from shared.contracts.bill import LineItemType
from shared.contracts.config import (
    PaddleDestinationConfig,
    SalesforceDestinationConfig,
    SortLineItemsBy,
    StripeDestinationConfig,
    XeroDestinationConfig,
)


@dataclass(frozen=True)
class DestinationInfo:
    destination: Destination
    label: str
    summary: str
    oauth: str | None  # provider of the OAuth connect flow, when there is one
    settings_model: type[BaseModel]


DESTINATIONS: dict[Destination, DestinationInfo] = {
    d.destination: d
    for d in (
        DestinationInfo(
            Destination.STRIPE,
            "Stripe",
            "Your Stripe production environment.",
            "stripe",
            StripeDestinationConfig,
        ),
        DestinationInfo(
            Destination.STRIPE_TEST,
            "Stripe (Test mode)",
            "Your Stripe test environment. The settings are the same as for Stripe.",
            "stripe",
            StripeDestinationConfig,
        ),
        DestinationInfo(
            Destination.PADDLE,
            "Paddle",
            "Your Paddle production environment. Invoices are created in draft; negative "
            "line items are not supported.",
            None,
            PaddleDestinationConfig,
        ),
        DestinationInfo(
            Destination.PADDLE_SANDBOX,
            "Paddle (Sandbox mode)",
            "Your Paddle sandbox environment. The settings are the same as for Paddle.",
            None,
            PaddleDestinationConfig,
        ),
        DestinationInfo(
            Destination.SALESFORCE,
            "Salesforce",
            "Bills and their lines as Salesforce records, on each change or hourly.",
            None,
            SalesforceDestinationConfig,
        ),
        DestinationInfo(
            Destination.XERO,
            "Xero",
            "Invoices in your Xero organisation (beta).",
            "xero",
            XeroDestinationConfig,
        ),
    )
}

_APPROVAL = (
    "Enable this if you only want Bills to be sent when they have been approved. If "
    "disabled, the Bill will be sent every time it is regenerated. Default is disabled. If "
    "you enable this, the integration will not run for all Bill Jobs; a manually "
    "recalculated Bill is sent again once approved."
)
HELP: dict[str, str] = {
    "name": "Useful when several integrations share a destination and entity type "
    "and need to be told apart.",
    "accountIds": "Select the Accounts you want to include - all selected Accounts are "
    "treated as allowed for the integration. To include all Accounts, leave both Account Ids "
    "and Restricted Account Ids empty.",
    "restrictedAccountIds": "Select the Accounts you want to exclude - all selected Accounts "
    "are treated as disallowed for the integration. This filtering is in addition to the "
    "Account Filter.",
    "disabledNotificationUserIds": "Select the users who receive an email if the integration "
    "is automatically disabled (after 10 successive error events). A user id from the users "
    "directory or an email address.",
    "entityConfig.onlySendBillOnApproval": _APPROVAL,
    "entityConfig.useExternalMappingAccountCode": "Enable this if you want the integration "
    "to look in the External Mappings for the Account identifier code, which means you can "
    "use an external Id. If disabled, the billsync Account Id is used. Default is disabled.",
    "entityConfig.enforceExternalMappingsForConfig": "Enable this if you want the "
    "integration to use only those external mappings whose Parent Configuration is this "
    "configuration.",
    "entityConfig.excludedLineItemTypes": "Optionally filter the Bill line items you send to "
    "the destination system. For example, only send charges or credits and exclude all "
    "other line items.",
    "entityConfig.sortLineItemsBy": "Optionally, select a property to sort line items by "
    "before they are sent out to the external system.",
    "entityConfig.accountFilter": "Optionally, enter an expression that is run on the Account "
    "to decide whether the integration runs, e.g. customFields != null AND "
    "customFields.country == UK. Any other Account field can be used (docs/filter-language.md).",
    # Stripe (m3ter)
    "destinationConfig.createStripeInvoice": "Enable this if you want the integration to "
    "create a Stripe invoice: on if you use Stripe Subscription Invoicing, off if you use "
    "Stripe Subscriptions (the lines become pending invoice items for the next "
    "subscription invoice).",
    "destinationConfig.priceDataProductId": "The Product Id in your Stripe Product List that "
    "lets the integration set tax-related fields on line items. Only one Product Id is "
    "required.",
    "destinationConfig.poNumberCustomField": "The name of the custom field in Stripe that "
    "will hold the Purchase Order number of the Bill.",
    "destinationConfig.sendDueDate": "Send the Bill's due date when creating Stripe invoices. "
    "Disable this if Stripe is configured to charge invoices automatically. Default is "
    "disabled.",
    # Stripe (Metronome's invoice settings)
    "destinationConfig.collectionMethod": "charge_automatically: Stripe charges the "
    "customer's default payment method. send_invoice: Stripe emails the invoice with "
    "payment instructions.",
    "destinationConfig.collectionMethodCustomField": "An Account custom field whose value "
    "(charge_automatically or send_invoice) overrides the collection method per customer.",
    "destinationConfig.daysUntilDue": "Stripe invoices are due 30 days after they are sent "
    "by default. No effect for customers charged automatically.",
    "destinationConfig.leaveInvoicesAsDrafts": "Leave invoices as drafts to review and "
    "finalize them manually in Stripe (auto_advance false).",
    "destinationConfig.skipZeroTotalInvoices": "Only send non-zero invoices: invoices below "
    "Stripe's minimum charge for the currency (USD 0.50) are skipped.",
    "destinationConfig.showZeroQuantityLines": "Create a Stripe line for every charge, "
    "including those with zero quantity.",
    "destinationConfig.alwaysShowPriceAndQuantity": "Always show price and quantity in the "
    "line descriptions (Stripe has no decimal quantities; by default they appear only when "
    "a quantity on the invoice is not whole).",
    "destinationConfig.companyName": "Shown in the description of a collapsed line when a "
    "bill has more lines than Stripe allows on one invoice (250).",
    "destinationConfig.fieldMappings": "Mapping rules from bill, account or product custom "
    'fields to Stripe, as JSON: [{"source": "account.customFields.region", "target": '
    '"invoice.metadata", "name": "region"}]. Targets: invoice.custom_field, '
    "invoice.metadata, line.metadata, line.product.",
    # Paddle
    "destinationConfig.collectionMode": "manual: Paddle sends the invoice for payment; "
    "automatic: Paddle charges the saved payment method.",
    "destinationConfig.paymentTermsInterval": "The unit of the payment terms.",
    "destinationConfig.paymentTermsFrequency": "How many intervals the customer has to pay.",
    "destinationConfig.taxCategory": "The Paddle tax category of the invoice items.",
    "destinationConfig.productId": "An optional Paddle product the items belong to.",
    # Salesforce
    "destinationConfig.triggerType": "EVENT: the integration is triggered when a Bill "
    "changes. SCHEDULE: the integration sends a batch of Bills every hour.",
    "destinationConfig.apiVersion": "The Salesforce REST API version, e.g. v61.0.",
    "destinationConfig.billObject": "The custom object that holds bills.",
    "destinationConfig.billExternalIdField": "The external id field of the bill object "
    "(upserts stay idempotent).",
    "destinationConfig.lineObject": "The custom object that holds bill lines.",
    "destinationConfig.lineExternalIdField": "The external id field of the line object.",
    "destinationConfig.accountLookupField": "The lookup field from the bill to the Account.",
    # Xero
    "destinationConfig.splitUsageLineItems": "How usage invoice items are created in Xero: "
    "an item per usage pricing band, or an item per product.",
    "destinationConfig.invoiceStatus": "The status Xero invoices are created in.",
    "destinationConfig.salesAccountCode": "The Xero account code the sales are posted to.",
    "destinationConfig.taxType": "An optional Xero tax type for the lines.",
}

LABELS = {
    "poNumberCustomField": "PO Number Custom Field",
    "priceDataProductId": "Price Data Product Id",
    "apiVersion": "API version",
    "taxType": "Tax type",
}


@dataclass(frozen=True)
class Setting:
    """One destination setting as a form control."""

    name: str  # the form field: destinationConfig.<wireName>
    label: str
    kind: Literal["bool", "choice", "int", "text", "json"]
    choices: tuple[str, ...] = ()
    optional: bool = False
    description: str = ""  # the model field's own description, when it has one

    @property
    def help(self) -> str:
        return HELP.get(self.name, self.description)


def _label(wire: str) -> str:
    if wire in LABELS:
        return LABELS[wire]
    words = re.sub(r"([A-Z])", r" \1", wire).split()
    return " ".join([words[0].capitalize(), *words[1:]]).replace(" Id", " Id")


def _setting(name: str, info: FieldInfo) -> Setting:
    setting = _control(name, info.annotation)
    return replace(setting, description=info.description or "")


def _control(name: str, annotation: Any) -> Setting:
    field = f"destinationConfig.{name}"
    optional = False
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        optional = True
        annotation = next(a for a in args if a is not type(None))
    label = _label(name)
    if annotation is bool:
        return Setting(field, label, "bool")
    if annotation is int:
        return Setting(field, label, "int", optional=optional)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return Setting(field, label, "choice", tuple(str(e.value) for e in annotation))
    if typing.get_origin(annotation) is Literal:
        return Setting(field, label, "choice", tuple(str(a) for a in typing.get_args(annotation)))
    structured = isinstance(annotation, type) and issubclass(annotation, BaseModel)
    if structured or typing.get_origin(annotation) in (list, dict):
        return Setting(field, label, "json", optional=True)
    return Setting(field, label, "text", optional=optional)


def settings_for(destination: Destination) -> list[Setting]:
    model = DESTINATIONS[destination].settings_model
    return [_setting(to_camel(n), f) for n, f in model.model_fields.items()]


def defaults(destination: Destination) -> dict[str, Any]:
    """Form values of a new configuration: every default as the wire would have it."""
    model = DESTINATIONS[destination].settings_model
    return {
        "name": "",
        "accountIds": [],
        "restrictedAccountIds": [],
        "disabledNotificationUserIds": [],
        "entityConfig": {
            "onlySendBillOnApproval": False,
            "useExternalMappingAccountCode": False,
            "enforceExternalMappingsForConfig": False,
            "excludedLineItemTypes": [],
            "sortLineItemsBy": "NONE",
            "accountFilter": "",
        },
        "destinationConfig": model().model_dump(mode="json", by_alias=True),
    }


def values_of(config: IntegrationConfig) -> dict[str, Any]:
    return config.model_dump(mode="json", by_alias=True)


_SPLIT = re.compile(r"[\s,]+")


def _ids(form: MultiDictProxy[Any], name: str) -> list[str]:
    chosen = [str(v) for v in form.getall(name, []) if str(v).strip()]
    extra = [p for p in _SPLIT.split(str(form.get(name + "Other", ""))) if p]
    return list(dict.fromkeys(chosen + extra))


def body_from_form(
    form: MultiDictProxy[Any], destination: Destination
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The configuration body the API would receive, plus problems only a form can have
    (text that is not JSON where JSON is wanted). Values are passed as typed so the API's
    validation reports them with its own messages."""
    problems: list[dict[str, str]] = []
    dest: dict[str, Any] = {}
    for setting in settings_for(destination):
        key = setting.name.removeprefix("destinationConfig.")
        raw = str(form.get(setting.name, "")).strip()
        if setting.kind == "bool":
            dest[key] = setting.name in form  # an unticked box is not sent
        elif setting.name not in form:
            continue  # not on the form: the default applies
        elif setting.kind == "json":
            if raw:
                try:
                    dest[key] = json.loads(raw)
                except json.JSONDecodeError as exc:
                    problems.append({"field": setting.name, "message": f"not valid JSON: {exc}"})
        elif setting.kind == "int":
            if raw or not setting.optional:
                dest[key] = int(raw) if re.fullmatch(r"-?\d+", raw) else raw
        elif raw or not setting.optional:
            dest[key] = raw
    entity = {
        "onlySendBillOnApproval": "entityConfig.onlySendBillOnApproval" in form,
        "useExternalMappingAccountCode": "entityConfig.useExternalMappingAccountCode" in form,
        "enforceExternalMappingsForConfig": "entityConfig.enforceExternalMappingsForConfig" in form,
        "excludedLineItemTypes": [
            str(v) for v in form.getall("entityConfig.excludedLineItemTypes", [])
        ],
        "sortLineItemsBy": str(form.get("entityConfig.sortLineItemsBy", "NONE")),
        "accountFilter": str(form.get("entityConfig.accountFilter", "")).strip() or None,
    }
    body = {
        "name": str(form.get("name", "")).strip(),
        "destination": destination.value,
        "entityType": "Bill",
        "accountIds": _ids(form, "accountIds"),
        "restrictedAccountIds": _ids(form, "restrictedAccountIds"),
        "disabledNotificationUserIds": _ids(form, "disabledNotificationUserIds"),
        "entityConfig": entity,
        "destinationConfig": dest,
    }
    return body, problems


def errors_by_field(details: list[dict[str, Any]]) -> dict[str, list[str]]:
    """API detail paths (destinationConfig.daysUntilDue, accountIds.2) -> form field names."""
    out: dict[str, list[str]] = {}
    for detail in details:
        field = str(detail.get("field", ""))
        parts = field.split(".")
        if len(parts) > 1 and parts[-1].isdigit():
            field = ".".join(parts[:-1])
        if field.startswith("destinationConfig.fieldMappings"):
            field = "destinationConfig.fieldMappings"
        out.setdefault(field, []).append(str(detail.get("message", "")))
    return out


LINE_ITEM_TYPES = [t.value for t in LineItemType]
SORTS = [s.value for s in SortLineItemsBy]
