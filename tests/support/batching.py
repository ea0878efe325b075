"""The generic batching fake and its minimal destination, as the batch suite's harness."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import SecretStr

from fakes.batching import FakeBatching
from fakes.batching.destination import BatchingDestination
from shared.contracts import IntegrationConfig, parse_config
from shared.credentials import Credential, XeroCredential
from shared.sinks.batching import BatchPolicy
from shared.sinks.limits import ProviderLimits, Scope, Window
from shared.sinks.standard_batch_tests import BatchCall, BatchHarness
from shared.sinks.standard_tests import ExternalInvoice, Fault


def credential(cred_id: str, tenant: str, token: str = "tok-test") -> XeroCredential:
    return XeroCredential(
        id=cred_id,
        client_id="client-1",
        client_secret=SecretStr("secret-1"),
        tenant_id=tenant,
        access_token=SecretStr(token),
    )


class FakeBatchingHarness(BatchHarness):
    def __init__(self, fake: FakeBatching, **destination: Any) -> None:
        assert fake.url
        self.fake = fake
        options: dict[str, Any] = {
            "policy": BatchPolicy(10, 0.3),
            "limits": ProviderLimits((Window(600, 60.0),), concurrent=5, scope=Scope.TENANT),
            **destination,
        }
        self.destination = BatchingDestination(fake.url, **options)
        self._credentials = [credential("cred-a", "tenant-a"), credential("cred-b", "tenant-b")]

    def credential(self, index: int) -> Credential:
        return self._credentials[index]

    def rejected_credential(self) -> Credential:
        return credential("cred-revoked", "tenant-a", token="tok-revoked")

    def config(self, config_id: str, credential_id: str, *, variant: int = 0) -> IntegrationConfig:
        return parse_config(
            {
                "id": config_id,
                "destination": "XERO",
                "integrationCredentialsId": credential_id,
                "destinationConfig": {"invoiceStatus": "AUTHORISED" if variant else "DRAFT"},
            }
        )

    async def invoices_for(self, bill_id: str) -> list[ExternalInvoice]:
        return [
            ExternalInvoice(i["id"], Decimal(i["total"]))
            for i in self.fake.invoices.values()
            if i["reference"].split(":", 1)[1] == bill_id
        ]

    async def mark_finalized(self, external_id: str) -> None:
        self.fake.invoices[external_id]["status"] = "FINALIZED"

    async def inject(self, fault: Fault) -> None:
        if fault is Fault.SERVER_ERROR:
            self.fake.inject(status=500)
        elif fault is Fault.RATE_LIMITED:
            self.fake.inject(status=429, retry_after=0.2)
        else:
            self.fake.inject(action="drop_after_commit")

    def calls(self) -> list[BatchCall]:
        out = []
        for call in self.fake.stats["batches"]:
            refs = [str(r) for r in call["references"]]
            out.append(
                BatchCall(
                    call["tenant"],
                    tuple(r.split(":", 1)[1] for r in refs),
                    tuple(r.split(":", 1)[0] for r in refs),
                )
            )
        return out
