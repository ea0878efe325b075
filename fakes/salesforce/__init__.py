"""A faithful local Salesforce org for tests and the local stack (`python -m fakes.salesforce`)."""

from .fake import API_VERSION, FakeSalesforce, FakeSalesforceConfig
from .schema import FieldDef, ObjectDef, default_objects

__all__ = [
    "API_VERSION",
    "FakeSalesforce",
    "FakeSalesforceConfig",
    "FieldDef",
    "ObjectDef",
    "default_objects",
]
