"""The metadata package an admin deploys (deploy/salesforce/metadata/) is the org the
local Salesforce models, and holds every field the sink writes by default."""

from __future__ import annotations

import xml.dom.minidom

from deploy.salesforce.generate import METADATA, files
from fakes.salesforce.schema import default_objects
from services.salesforce_sink.mapping import DEFAULT_BILL_FIELDS, DEFAULT_LINE_FIELDS
from shared.contracts.config import SalesforceDestinationConfig


def test_the_committed_package_is_what_the_generator_writes() -> None:
    expected = files()
    committed = {
        str(p.relative_to(METADATA)): p.read_text() for p in METADATA.rglob("*") if p.is_file()
    }
    assert committed == expected, "run: .venv/bin/python -m deploy.salesforce.generate"
    for content in expected.values():
        xml.dom.minidom.parseString(content)


def test_every_default_field_the_sink_writes_exists() -> None:
    defaults = SalesforceDestinationConfig()
    objects = default_objects()
    bill = objects[defaults.bill_object]
    line = objects[defaults.line_object]
    for name in [*DEFAULT_BILL_FIELDS.values(), defaults.bill_external_id_field]:
        assert bill.field_named(name) is not None, name
    assert defaults.account_lookup_field is not None
    assert bill.field_named(defaults.account_lookup_field) is not None
    for name in [*DEFAULT_LINE_FIELDS.values(), defaults.line_external_id_field]:
        assert line.field_named(name) is not None, name
    relationship = line.field_named(defaults.line_bill_field)
    assert relationship is not None and relationship.reference_to == (defaults.bill_object,)
    account_key = objects["Account"].field_named(defaults.account_external_id_field)
    assert account_key is not None and account_key.external_id
