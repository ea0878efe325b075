"""Writes the Salesforce metadata package (deploy/salesforce/metadata/) from the objects
the local Salesforce models (fakes/salesforce/schema.py), so the package an admin deploys
and the org the tests run against cannot drift apart
(tests/unit/test_salesforce_metadata.py compares them).

    .venv/bin/python -m deploy.salesforce.generate      # rewrite the package
"""

from __future__ import annotations

import sys
from pathlib import Path
from xml.sax.saxutils import escape

from fakes.salesforce.schema import FieldDef, ObjectDef, default_objects

API_VERSION = "67.0"
HERE = Path(__file__).resolve().parent
METADATA = HERE / "metadata"
PERMISSION_SET = "Billsync_Integration"
SYSTEM_FIELDS = {"Id", "Name", "CreatedDate", "LastModifiedDate"}
_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'
_NS = "http://soap.sforce.com/2006/04/metadata"


def _label(name: str) -> str:
    return name.removesuffix("__c").replace("_", " ")


def _tag(name: str, value: object, indent: str = "        ") -> str:
    text = str(value).lower() if isinstance(value, bool) else escape(str(value))
    return f"{indent}<{name}>{text}</{name}>\n"


def _field_xml(obj: ObjectDef, f: FieldDef) -> str:
    label = f.label if f.label and f.label != f.name else _label(f.name)
    out = "    <fields>\n" + _tag("fullName", f.name) + _tag("label", label)
    if f.type == "string":
        out += _tag("type", "Text") + _tag("length", f.length)
        if f.external_id:
            out += _tag("externalId", True) + _tag("unique", True) + _tag("caseSensitive", True)
            out += _tag("required", False)
    elif f.type == "textarea":
        out += _tag("type", "LongTextArea") + _tag("length", f.length)
        out += _tag("visibleLines", 3)
    elif f.type in ("double", "currency"):
        out += _tag("type", "Number") + _tag("precision", f.precision) + _tag("scale", f.scale)
    elif f.type == "date":
        out += _tag("type", "Date")
    elif f.type == "datetime":
        out += _tag("type", "DateTime")
    elif f.type == "reference":
        target = f.reference_to[0]
        if f.required:  # the line's bill: master-detail, deleted with its bill
            out += _tag("type", "MasterDetail")
            out += _tag("relationshipOrder", 0) + _tag("reparentableMasterDetail", False)
            out += _tag("writeRequiresMasterRead", False)
        else:
            out += _tag("type", "Lookup") + _tag("deleteConstraint", "SetNull")
        out += _tag("referenceTo", target)
        out += _tag("relationshipLabel", f"{_label(obj.name)}s")
        # The child relationship as the parent sees it (SOQL from the parent: ..._s__r); the
        # child's path to its parent is the field's own name (Bill__c -> Bill__r).
        out += _tag("relationshipName", f"{obj.name.removesuffix('__c')}s")
    else:
        raise ValueError(f"{obj.name}.{f.name}: no metadata type for {f.type}")
    return out + "    </fields>\n"


def object_xml(obj: ObjectDef) -> str:
    custom = [f for f in obj.fields.values() if f.name not in SYSTEM_FIELDS]
    out = _HEAD + f'<CustomObject xmlns="{_NS}">\n'
    if obj.name.endswith("__c"):
        master = any(f.type == "reference" and f.required for f in custom)
        out += _tag("label", _label(obj.name), "    ")
        out += _tag("pluralLabel", _label(obj.name) + "s", "    ")
        out += "    <nameField>\n" + _tag("label", obj.fields["Name"].label)
        out += _tag("type", "Text") + "    </nameField>\n"
        out += _tag("deploymentStatus", "Deployed", "    ")
        out += _tag("sharingModel", "ControlledByParent" if master else "ReadWrite", "    ")
    for f in custom:
        out += _field_xml(obj, f)
    return out + "</CustomObject>\n"


def permission_set_xml(objects: list[ObjectDef]) -> str:
    out = _HEAD + f'<PermissionSet xmlns="{_NS}">\n'
    out += _tag("label", "billsync integration", "    ")
    out += _tag("description", "What billsync's integration user reads and writes.", "    ")
    for obj in objects:
        for f in obj.fields.values():
            if f.name in SYSTEM_FIELDS or (f.type == "reference" and f.required):
                continue  # master-detail fields are always readable and writable
            out += "    <fieldPermissions>\n" + _tag("editable", True)
            out += _tag("field", f"{obj.name}.{f.name}") + _tag("readable", True)
            out += "    </fieldPermissions>\n"
    for obj in objects:
        if not obj.name.endswith("__c"):
            continue
        out += "    <objectPermissions>\n" + _tag("allowCreate", True)
        out += _tag("allowDelete", True) + _tag("allowEdit", True) + _tag("allowRead", True)
        out += _tag("modifyAllRecords", False) + _tag("object", obj.name)
        out += _tag("viewAllRecords", True) + "    </objectPermissions>\n"
    return out + "</PermissionSet>\n"


def package_xml(objects: list[ObjectDef]) -> str:
    out = _HEAD + f'<Package xmlns="{_NS}">\n'
    out += "    <types>\n"
    for obj in objects:
        if obj.name.endswith("__c"):
            out += _tag("members", obj.name)
    out += _tag("name", "CustomObject") + "    </types>\n"
    out += "    <types>\n"
    for obj in objects:
        for f in obj.fields.values():
            if f.name not in SYSTEM_FIELDS and not obj.name.endswith("__c"):
                out += _tag("members", f"{obj.name}.{f.name}")
    out += _tag("name", "CustomField") + "    </types>\n"
    out += "    <types>\n" + _tag("members", PERMISSION_SET)
    out += _tag("name", "PermissionSet") + "    </types>\n"
    out += _tag("version", API_VERSION, "    ")
    return out + "</Package>\n"


def files() -> dict[str, str]:
    """Path under metadata/ -> content."""
    objects = list(default_objects().values())
    out = {"package.xml": package_xml(objects)}
    for obj in objects:
        out[f"objects/{obj.name}.object"] = object_xml(obj)
    out[f"permissionsets/{PERMISSION_SET}.permissionset"] = permission_set_xml(objects)
    return out


def main(argv: list[str]) -> int:
    for relative, content in files().items():
        path = METADATA / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        print(f"wrote {path.relative_to(HERE.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
