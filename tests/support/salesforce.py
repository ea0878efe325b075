"""What the Salesforce tests share: the billsync objects' names, an RSA key pair for the
JWT bearer flow, and the standard suites' view of bill records on the local Salesforce."""

from __future__ import annotations

from decimal import Decimal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from fakes.salesforce import FakeSalesforce
from shared.sinks.standard_tests import ExternalInvoice, Fault

BILL, LINE = "Billsync_Bill__c", "Billsync_Bill_Line__c"
BILL_ID, LINE_ID = "Billsync_Bill_Id__c", "Billsync_Line_Id__c"


def rsa_keypair() -> tuple[str, str]:
    """A fresh (private PKCS#8, public SubjectPublicKeyInfo) PEM pair."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


class SalesforceRecords:
    """The part of a standard-suite harness (single or batch path) that reads and drives
    the local Salesforce: a bill is a bill record, "finalized" is an approval lock on it
    (its lines, master-detail children, are locked with it). Put it before the harness
    base class."""

    fake: FakeSalesforce

    async def invoices_for(self, bill_id: str) -> list[ExternalInvoice]:
        return [
            ExternalInvoice(str(r["Id"]), Decimal(str(r["Bill_Total__c"])))
            for r in self.fake.records(BILL)
            if r.get(BILL_ID) == bill_id
        ]

    async def mark_finalized(self, external_id: str) -> None:
        self.fake.lock(external_id)

    async def inject(self, fault: Fault) -> None:
        if fault is Fault.SERVER_ERROR:
            self.fake.inject(status=503)
        elif fault is Fault.RATE_LIMITED:
            self.fake.inject(status=403)
        else:
            self.fake.inject(action="drop_after_commit")
