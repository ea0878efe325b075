"""Objects and fields of the local Salesforce: what `describe` answers and what a record
is checked against.

The defaults are the objects docs/destinations/salesforce.md asks an admin to create
(`Billsync_Bill__c`, `Billsync_Bill_Line__c`, an external id on Account), with the same
field names, types, lengths and precisions as deploy/salesforce/ (the metadata package)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FieldDef:
    name: str
    type: str  # id | string | textarea | double | currency | date | datetime | reference | ...
    label: str = ""
    length: int = 0  # string and textarea
    precision: int = 0  # double and currency: total digits
    scale: int = 0  # double and currency: digits after the point
    external_id: bool = False
    unique: bool = False
    required: bool = False  # nillable False and createable (REQUIRED_FIELD_MISSING on create)
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label or self.name,
            "type": self.type,
            "length": self.length,
            "precision": self.precision,
            "scale": self.scale,
            "externalId": self.external_id,
            "unique": self.unique,
            "idLookup": self.external_id or self.name == "Id",
            "nillable": not self.required and self.name != "Id",
            "createable": self.name != "Id",
            "updateable": self.name != "Id",
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
        }


@dataclass(frozen=True)
class ObjectDef:
    name: str
    key_prefix: str
    fields: dict[str, FieldDef] = field(default_factory=dict)
    label: str = ""

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label or self.name,
            "custom": self.name.endswith("__c"),
            "keyPrefix": self.key_prefix,
            "createable": True,
            "updateable": True,
            "deletable": True,
            "fields": [f.describe() for f in self.fields.values()],
        }

    def relationship(self, name: str) -> FieldDef | None:
        for f in self.fields.values():
            if f.relationship_name is not None and f.relationship_name.lower() == name.lower():
                return f
        return None

    def field_named(self, name: str) -> FieldDef | None:
        for f in self.fields.values():
            if f.name.lower() == name.lower():
                return f
        return None


def _fields(*defs: FieldDef) -> dict[str, FieldDef]:
    base = [
        FieldDef("Id", "id", "Record ID", length=18),
        FieldDef("CreatedDate", "datetime", "Created Date"),
        FieldDef("LastModifiedDate", "datetime", "Last Modified Date"),
    ]
    return {f.name: f for f in (*base, *defs)}


def _text(name: str, length: int, label: str = "", **kw: Any) -> FieldDef:
    return FieldDef(name, "string", label or name, length=length, **kw)


def _number(name: str, precision: int, scale: int, kind: str = "double") -> FieldDef:
    return FieldDef(name, kind, name, precision=precision, scale=scale)


def default_objects() -> dict[str, ObjectDef]:
    """Account (with billsync's account external id) and the two billsync objects."""
    account = ObjectDef(
        "Account",
        "001",
        _fields(
            _text("Name", 255, "Account Name", required=True),
            _text("Billsync_Account_Id__c", 255, external_id=True, unique=True),
        ),
    )
    bill = ObjectDef(
        "Billsync_Bill__c",
        "a0B",
        _fields(
            _text("Name", 80, "Bill Name", required=True),
            _text("Billsync_Bill_Id__c", 255, external_id=True, unique=True),
            FieldDef(
                "Account__c",
                "reference",
                "Account",
                reference_to=("Account",),
                relationship_name="Account__r",
            ),
            _number("Bill_Version__c", 18, 0),
            _text("Account_Code__c", 255),
            FieldDef("Bill_Date__c", "date"),
            FieldDef("Due_Date__c", "date"),
            FieldDef("Start_Date__c", "date"),
            FieldDef("End_Date__c", "date"),
            _text("Currency__c", 3),
            _text("Status__c", 40),
            _number("Bill_Total__c", 18, 4),
            _text("Purchase_Order_Number__c", 255),
            _text("Invoice_Number__c", 255),
            _text("External_Invoice_Reference__c", 255),
            _text("Billing_Frequency__c", 40),
            FieldDef("Last_Calculated_Date__c", "datetime"),
        ),
    )
    line = ObjectDef(
        "Billsync_Bill_Line__c",
        "a0C",
        _fields(
            _text("Name", 80, "Line Name", required=True),
            _text("Billsync_Line_Id__c", 255, external_id=True, unique=True),
            FieldDef(
                "Bill__c",
                "reference",
                "Bill",
                required=True,
                reference_to=("Billsync_Bill__c",),
                relationship_name="Bill__r",
            ),
            _number("Position__c", 6, 0),
            _text("Line_Item_Type__c", 40),
            FieldDef("Description__c", "textarea", "Description", length=32768),
            _number("Quantity__c", 18, 6),
            _text("Unit__c", 80),
            _number("Average_Unit_Price__c", 18, 8),
            _number("Subtotal__c", 18, 4),
            _text("Currency__c", 3),
            _text("Product_Id__c", 255),
            _text("Product_Code__c", 255),
            _text("Product_Name__c", 255),
            _text("Aggregation_Id__c", 255),
            FieldDef("Service_Period_Start__c", "datetime"),
            FieldDef("Service_Period_End__c", "datetime"),
        ),
    )
    return {o.name: o for o in (account, bill, line)}
