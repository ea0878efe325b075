"""One organisation's books: contacts, items, accounts, tax rates, invoices and credit notes,
with the rules Xero applies that its OpenAPI document cannot express.

Each incoming element (an Invoice or a CreditNote of a PUT/POST body) is checked against the
spec first (`spec.errors`), then against these rules; `apply` answers the element Xero would
return, with `ValidationErrors` when refused (nothing is stored then).

Rules kept here, as Xero has them:
- an ACCREC `InvoiceNumber` (and a `CreditNoteNumber`) is unique in the organisation; PUT
  never updates: a number already used is "Invoice # must be unique.";
- POST updates the document named by `InvoiceID` or, failing that, by its number; only
  DRAFT and SUBMITTED documents can be edited; a status moves DRAFT/SUBMITTED -> AUTHORISED,
  DRAFT/SUBMITTED -> DELETED, AUTHORISED -> VOIDED (no payments); never back;
- `Contact.ContactID`, `ItemCode`, `AccountCode` and `TaxType` must exist (an item's sales
  account and price fill the line when it gives none); `CurrencyCode` must be one of the
  organisation's currencies;
- SUBMITTED and AUTHORISED need every line to have an account code and a due date for
  invoices, and a total of zero or more ("Invoice total must be zero or positive");
- unit amounts keep 2 decimal places, or 4 with `unitdp=4`; quantities 4; a line's amount is
  quantity x unit amount rounded to 2 places; at most 2 tracking categories per line.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from . import spec
from .wire import ms_date

JSON = dict[str, Any]
CENT = Decimal("0.01")
EDITABLE = ("DRAFT", "SUBMITTED")
TRANSITIONS = {
    "DRAFT": {"DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"},
    "SUBMITTED": {"DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"},
    "AUTHORISED": {"VOIDED", "PAID"},
    "PAID": set(),
    "VOIDED": set(),
    "DELETED": set(),
}
DEFAULT_TAX_TYPES = ("OUTPUT", "OUTPUT2", "NONE", "EXEMPTOUTPUT", "TAX001", "ZERORATEDOUTPUT")


@dataclass(frozen=True)
class Kind:
    """Invoices and credit notes differ only in names."""

    collection: str  # "Invoices"
    schema: str  # "Invoice"
    id_field: str  # "InvoiceID"
    number_field: str  # "InvoiceNumber"
    types: tuple[str, ...]
    number_prefix: str
    label: str  # "Invoice"


INVOICE = Kind(
    "Invoices", "Invoice", "InvoiceID", "InvoiceNumber", ("ACCREC", "ACCPAY"), "INV-", "Invoice"
)
CREDIT_NOTE = Kind(
    "CreditNotes",
    "CreditNote",
    "CreditNoteID",
    "CreditNoteNumber",
    ("ACCRECCREDIT", "ACCPAYCREDIT"),
    "CN-",
    "Credit Note",
)
KINDS = {k.collection: k for k in (INVOICE, CREDIT_NOTE)}


@dataclass
class Organisation:
    tenant_id: str
    name: str
    base_currency: str = "USD"
    currencies: set[str] = field(default_factory=lambda: {"USD", "EUR", "GBP", "NZD", "AUD"})
    contacts: dict[str, JSON] = field(default_factory=dict)  # by ContactID
    items: dict[str, JSON] = field(default_factory=dict)  # by Code
    accounts: dict[str, JSON] = field(default_factory=dict)  # by Code
    tax_types: set[str] = field(default_factory=lambda: set(DEFAULT_TAX_TYPES))
    documents: dict[str, dict[str, JSON]] = field(
        default_factory=lambda: {"Invoices": {}, "CreditNotes": {}}
    )
    numbers: dict[str, dict[str, str]] = field(
        default_factory=lambda: {"Invoices": {}, "CreditNotes": {}}
    )
    sequence: int = 0  # the last automatic number given

    # ---- seeding ------------------------------------------------------------------------

    def add_contact(
        self, name: str, contact_id: str | None = None, number: str | None = None
    ) -> JSON:
        contact: JSON = {
            "ContactID": contact_id or str(uuid.uuid4()),
            "Name": name,
            "ContactStatus": "ACTIVE",
            "IsCustomer": True,
        }
        if number is not None:
            contact["ContactNumber"] = number
        self.contacts[contact["ContactID"]] = contact
        return contact

    def add_account(self, code: str, name: str, account_type: str = "REVENUE") -> JSON:
        account = {"AccountID": str(uuid.uuid4()), "Code": code, "Name": name, "Type": account_type}
        self.accounts[code] = account
        return account

    def add_item(self, code: str, name: str | None = None, account_code: str | None = None) -> JSON:
        item: JSON = {"ItemID": str(uuid.uuid4()), "Code": code, "Name": name or code}
        if account_code is not None:
            item["SalesDetails"] = {"AccountCode": account_code}
        self.items[code] = item
        return item

    # ---- reading ------------------------------------------------------------------------

    def find(self, kind: Kind, element: JSON) -> JSON | None:
        ident = element.get(kind.id_field)
        if isinstance(ident, str) and ident in self.documents[kind.collection]:
            return self.documents[kind.collection][ident]
        number = element.get(kind.number_field)
        if isinstance(number, str) and number:
            found = self.numbers[kind.collection].get(number)
            if found is not None:
                return self.documents[kind.collection][found]
        return None

    def by_number(self, kind: Kind, number: str) -> JSON | None:
        ident = self.numbers[kind.collection].get(number)
        return self.documents[kind.collection][ident] if ident else None

    # ---- writing ------------------------------------------------------------------------

    def apply(self, kind: Kind, element: Any, *, create_only: bool, unitdp: int) -> JSON:
        """The answer for one element; stores it when valid."""
        if not isinstance(element, dict):
            return _refused({}, [f"Each {kind.label} must be a JSON object"])
        problems = spec.errors(kind.schema, element)
        if problems:
            return _refused(
                element, [f"The request does not match the API schema: {p}" for p in problems]
            )
        existing = self.find(kind, element)
        if existing is not None and create_only and kind.id_field not in element:
            number = element.get(kind.number_field)
            return _refused(
                element, [f"{kind.label} # must be unique."] if number else ["Duplicate"]
            )
        if existing is None and element.get(kind.id_field):
            return _refused(element, [f"{kind.label} could not be found"])
        if existing is not None:
            return self._update(kind, existing, element, unitdp)
        return self._create(kind, element, unitdp)

    def _create(self, kind: Kind, element: JSON, unitdp: int) -> JSON:
        status = element.get("Status", "DRAFT")
        if status not in ("DRAFT", "SUBMITTED", "AUTHORISED"):
            return _refused(element, [f"A new {kind.label} cannot have status {status}"])
        document: JSON = {
            "Type": element.get("Type"),
            kind.id_field: str(uuid.uuid4()),
            "Status": "DRAFT",
            "LineAmountTypes": "Exclusive",
            "CurrencyCode": self.base_currency,
        }
        errors = self._merge(kind, document, element, unitdp, new=True)
        if errors:
            return _refused(element, errors)
        number = document.get(kind.number_field)
        if not number:
            self.sequence += 1
            number = document[kind.number_field] = f"{kind.number_prefix}{self.sequence:04d}"
        elif number in self.numbers[kind.collection]:
            return _refused(element, [f"{kind.label} # must be unique."])
        self.documents[kind.collection][document[kind.id_field]] = document
        self.numbers[kind.collection][number] = document[kind.id_field]
        return _answer(document)

    def _update(self, kind: Kind, existing: JSON, element: JSON, unitdp: int) -> JSON:
        current = existing["Status"]
        wanted = element.get("Status", current)
        only_status = set(element) <= {kind.id_field, kind.number_field, "Status"}
        if current not in EDITABLE and not (only_status and wanted in TRANSITIONS[current]):
            return _refused(
                element,
                [f"This document cannot be edited as it has a status of {current}."]
                if current != "PAID"
                else [
                    "This document cannot be edited as it has a payment or credit note "
                    "allocated to it."
                ],
            )
        if wanted != current and wanted not in TRANSITIONS[current]:
            return _refused(element, [f"The status cannot change from {current} to {wanted}."])
        number = element.get(kind.number_field)
        if (
            number
            and number != existing.get(kind.number_field)
            and number in self.numbers[kind.collection]
        ):
            return _refused(element, [f"{kind.label} # must be unique."])
        candidate = dict(existing)
        errors = self._merge(kind, candidate, element, unitdp, new=False)
        if errors:
            return _refused(element, errors)
        old_number = existing.get(kind.number_field)
        if candidate.get(kind.number_field) != old_number:
            self.numbers[kind.collection].pop(str(old_number), None)
            self.numbers[kind.collection][candidate[kind.number_field]] = candidate[kind.id_field]
        existing.clear()
        existing.update(candidate)
        return _answer(existing)

    def _merge(
        self, kind: Kind, document: JSON, element: JSON, unitdp: int, *, new: bool
    ) -> list[str]:
        errors: list[str] = []
        if new and element.get("Type") not in kind.types:
            errors.append(f"Type must be one of {', '.join(kind.types)} for a {kind.label}")
        for name in (
            "Reference",
            "LineAmountTypes",
            "Status",
            "CurrencyCode",
            kind.number_field,
            "Url",
        ):
            if name in element:
                document[name] = element[name]
        if document["CurrencyCode"] not in self.currencies:
            errors.append(
                f"The currency code {document['CurrencyCode']} is not enabled for this organisation"
            )
        contact = element.get("Contact", document.get("Contact") if not new else None)
        if not isinstance(contact, dict):
            errors.append("A Contact must be specified for this type of transaction")
        else:
            found = self._contact(contact)
            if found is None:
                errors.append(
                    "The contact could not be found"
                    if contact.get("ContactID")
                    else "A Contact must be specified for this type of transaction"
                )
            else:
                document["Contact"] = {"ContactID": found["ContactID"], "Name": found["Name"]}
        for name in ("Date", "DueDate"):
            if name in element:
                parsed = _date(element[name])
                if parsed is None:
                    errors.append(f"{name} is not a valid date (YYYY-MM-DD)")
                else:
                    document[f"{name}String"] = f"{parsed.isoformat()}T00:00:00"
                    document[name] = ms_date(parsed)
        if "LineItems" in element:
            lines, line_errors = self._lines(element["LineItems"], unitdp)
            errors += line_errors
            document["LineItems"] = lines
        document.setdefault("LineItems", [])
        self._totals(document)
        status = document["Status"]
        if status in ("SUBMITTED", "AUTHORISED"):
            if any(not line.get("AccountCode") for line in document["LineItems"]):
                errors.append("Account code must be specified")
            if kind is INVOICE and "DueDate" not in document:
                errors.append("Due Date must be specified")
            if document["Total"] < 0:
                errors.append(f"{kind.label} total must be zero or positive")
        return errors

    def _contact(self, contact: JSON) -> JSON | None:
        ident = contact.get("ContactID")
        if ident:
            return self.contacts.get(str(ident))
        number = contact.get("ContactNumber")
        if number:
            for known in self.contacts.values():
                if known.get("ContactNumber") == number:
                    return known
        name = contact.get("Name")
        if isinstance(name, str) and name.strip():
            for known in self.contacts.values():
                if known["Name"] == name and (not number or "ContactNumber" not in known):
                    return known
            # Xero creates a contact named on a document.
            return self.add_contact(name, number=str(number) if number else None)
        return None

    def _lines(self, items: list[JSON], unitdp: int) -> tuple[list[JSON], list[str]]:
        lines: list[JSON] = []
        errors: list[str] = []
        unit_step = Decimal(1).scaleb(-(4 if unitdp == 4 else 2))
        for number, given in enumerate(items, 1):
            line: JSON = {"LineItemID": given.get("LineItemID") or str(uuid.uuid4())}
            code = given.get("ItemCode")
            item = self.items.get(code) if code else None
            if code and item is None:
                errors.append(f"Item code '{code}' is not valid")
            account = given.get("AccountCode")
            if account is None and item is not None:
                account = item.get("SalesDetails", {}).get("AccountCode")
            if account is not None and account not in self.accounts:
                errors.append(f"Account code '{account}' is not a valid code for this document.")
            tax = given.get("TaxType")
            if tax is not None and tax not in self.tax_types:
                errors.append(
                    f"The TaxType code '{tax}' does not exist or cannot be used for this "
                    "type of transaction."
                )
            tracking = given.get("Tracking") or []
            if len(tracking) > 2:
                errors.append("A line item can have at most 2 tracking categories")
            quantity = Decimal(str(given.get("Quantity", 1))).quantize(
                Decimal("0.0001"), ROUND_HALF_UP
            )
            unit = Decimal(str(given.get("UnitAmount", 0))).quantize(unit_step, ROUND_HALF_UP)
            description = given.get("Description") or (item or {}).get("Name")
            if not description and not code:
                errors.append(f"Line {number}: a Description or an ItemCode is required")
            line.update(
                {
                    "Description": description or "",
                    "Quantity": quantity,
                    "UnitAmount": unit,
                    "LineAmount": (quantity * unit).quantize(CENT, ROUND_HALF_UP),
                    "Tracking": tracking,
                }
            )
            for name, value in (("ItemCode", code), ("AccountCode", account), ("TaxType", tax)):
                if value is not None:
                    line[name] = value
            lines.append(line)
        return lines, errors

    @staticmethod
    def _totals(document: JSON) -> None:
        subtotal = sum((line["LineAmount"] for line in document["LineItems"]), Decimal("0.00"))
        document["SubTotal"] = subtotal
        document["TotalTax"] = Decimal("0.00")
        document["Total"] = subtotal


def _date(value: Any) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _answer(document: JSON) -> JSON:
    return {**document, "HasErrors": False, "StatusAttributeString": "OK"}


def _refused(element: JSON, messages: list[str]) -> JSON:
    return {
        **element,
        "HasErrors": True,
        "StatusAttributeString": "ERROR",
        "ValidationErrors": [{"Message": m} for m in messages],
    }
