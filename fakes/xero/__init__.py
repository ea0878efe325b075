"""A faithful local Xero (Accounting API and identity) for tests and the local stack."""

from .documents import CREDIT_NOTE, INVOICE, Organisation
from .fake import API, FakeXero, FakeXeroConfig, Fault, validation_exception

__all__ = [
    "API",
    "CREDIT_NOTE",
    "INVOICE",
    "FakeXero",
    "FakeXeroConfig",
    "Fault",
    "Organisation",
    "validation_exception",
]
