"""The served OpenAPI document is kept true: schemathesis generates requests for every
operation against the running control plane and checks each response (no server error,
a documented status code and content type, a body that matches the response schema).

Random ids mostly meet 404s, so a share of the cases use the ids of seeded resources
(re-seeded before each operation, as DELETE cases remove them) to reach the 200s too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shared.contracts import ExternalStatusUpdate, IntegrationEvent, IntegrationRun
from shared.settings import Settings
from tests.support.control import Api, api_for
from tests.support.kafka import publish

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning"),
]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 30
KNOWN_PATH_PARAMS = {
    "/integrationconfigs/": {"id": "cfg-1"},
    "/integrationcredentials/": {"id": "cred-1"},
    "/externalmappings/externalid/": {
        "system": "Stripe",
        "externalTable": "Customer",
        "externalId": "cus_1",
    },
    "/externalmappings/entity/": {"m3terEntity": "Account", "m3terId": "acc-1"},
    "/externalmappings/": {"id": "map-1"},
    "/integrationruns/": {"id": "run-1"},
    "/integrationevents/": {"id": "evt-1"},
    "/oauth/": {"provider": "stripe"},
}
SEEDS: list[tuple[str, dict[str, Any]]] = [
    ("/integrationcredentials", {"type": "STRIPE", "id": "cred-1", "apiKey": "sk_test_openapi"}),
    (
        "/integrationconfigs",
        {"id": "cfg-1", "destination": "STRIPE_TEST", "integrationCredentialsId": "cred-1"},
    ),
    (
        "/externalmappings",
        {
            "id": "map-1",
            "externalSystem": "Stripe",
            "externalTable": "Customer",
            "externalId": "cus_1",
            "m3terEntity": "Account",
            "m3terId": "acc-1",
        },
    ),
]


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async with api_for(settings) as client:
        yield client


async def _seed_history(api: Api, settings: Settings) -> None:
    now = datetime.now(UTC)
    records = [
        IntegrationRun(
            id="run-1",
            entity_id="bill-1",
            integration_config_id="cfg-1",
            destination="STRIPE_TEST",
            status="COMPLETE",
            dt_started=now,
            external_id="in_1",
            source=f"{settings.topics.name('bill_generated')}/0/0",
        ),
        IntegrationEvent(
            id="evt-1",
            event_type="integration.perform.error",
            message="boom",
            integration_config_id="cfg-1",
            dt_created=now,
        ),
        ExternalStatusUpdate(
            id="evt_s",
            external_id="in_1",
            external_status="PAID",
            provider_event_type="invoice.paid",
            dt_received=now,
        ),
    ]
    topic = settings.topics.name("integration_results")
    await publish(settings.kafka_bootstrap_servers, topic, [(b"k", r.to_bytes()) for r in records])
    for _ in range(100):
        if (await api.call("GET", "/integrationevents/evt-1"))[0] == 200:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("seeded results were not ingested")


def _known(path: str) -> dict[str, str] | None:
    for prefix, params in KNOWN_PATH_PARAMS.items():
        if path.startswith(prefix) and "{" in path:
            return params
    return None


def _fuzz(base_url: str, token: str) -> tuple[list[str], int]:
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    headers = {"Authorization": f"Bearer {token}"}
    failures: list[str] = []
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # Err raises: a broken spec
        for path, body in SEEDS:  # 409 when it still exists: fine
            requests.post(base_url + path, json=body, headers=headers, timeout=10)
        options = [
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        ]
        known = _known(operation.path)
        if known:
            options.append(operation.as_strategy(GenerationMode.POSITIVE, path_parameters=known))

        @hypothesis.settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        @hypothesis.given(case=st.one_of(*options))
        def check(case: schemathesis.Case[Any]) -> None:
            nonlocal calls
            calls += 1
            case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)

        try:
            check()
        except Exception as exc:  # collect every operation's failure, report them together
            failures.append(f"{operation.label}: {exc}")
    return failures, calls


async def test_responses_conform_to_the_served_openapi_document(
    api: Api, settings: Settings
) -> None:
    await _seed_history(api, settings)
    status, doc = await api.call("GET", "/openapi.json", as_=None)
    assert status == 200 and doc["openapi"].startswith("3.1")
    # schemathesis is synchronous: it runs in a thread while the app serves on this loop.
    failures, calls = await asyncio.to_thread(_fuzz, api.handle.base_url, api.handle.admin_token)
    assert not failures, "\n\n".join(failures)
    assert calls >= len(doc["paths"]) * 10  # it really exercised every operation
