"""The whole stack behind the console for browser tests and screenshots: a real broker
(topics in a fresh namespace), the control plane with its console, the router, the Stripe
sink and the local Stripe, sample accounts, a credential and two configurations."""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from pydantic import SecretStr

from services.stripe_sink.client import API_BASE_ENV
from services.stripe_sink.oauth import StripeConnectSettings
from shared.kafka.topics import delete_topics_with_prefix
from shared.sampledata import make_accounts, make_bills
from shared.settings import Settings, TopicNames
from tests.support.control import ControlPlaneHandle, FakeProvider, running_control_plane
from tests.support.kafka import publish
from tests.support.services import running_router
from tests.support.stripe_stack import StripeStack, stripe_stack

STRIPE_KEY = "sk_test_console_browser"
USERS = """\
- {id: ops-lead, email: ops-lead@example.com, name: Ops Lead}
- {id: finance, email: finance@example.com, name: Finance team}
"""


@dataclass
class ConsoleStack:
    stripe: StripeStack
    control: ControlPlaneHandle
    http: aiohttp.ClientSession

    @property
    def settings(self) -> Settings:
        return self.stripe.settings

    @property
    def console_url(self) -> str:
        return self.control.base_url + "/console"

    async def api(self, method: str, path: str, **kwargs: Any) -> Any:
        async with self.http.request(
            method, self.control.base_url + path, headers=self.control.admin_headers, **kwargs
        ) as resp:
            body = await resp.json()
            assert resp.status < 300, (resp.status, body)
            return body

    async def publish_bills(self, bills: list[Any], topic: str = "bill_generated") -> None:
        await publish(
            self.settings.kafka_bootstrap_servers,
            self.settings.topics.name(topic),
            [(b.id.encode(), b.to_bytes()) for b in bills],
        )


def stack_settings(bootstrap: str) -> Settings:
    ns = f"t{uuid.uuid4().hex[:10]}-"
    return Settings(
        kafka_bootstrap_servers=bootstrap,
        topics=TopicNames(prefix=ns),
        topic_partitions=1,
        consumer_group_prefix=ns + "billsync",
        http_port=0,
    )


@contextlib.asynccontextmanager
async def stripe_connect() -> AsyncIterator[StripeConnectSettings]:
    """Stripe Connect's authorize page (it approves at once and sends the browser back
    with a code) and token endpoint (tests.support's fake), as the flow's settings."""
    provider = FakeProvider()

    async def authorize(request: web.Request) -> web.StreamResponse:
        query = urlencode({"code": "good-code", "state": request.query["state"]})
        raise web.HTTPFound(f"{request.query['redirect_uri']}?{query}")

    app = web.Application()
    app.add_routes([web.get("/authorize", authorize), web.post("/token", provider.stripe_token)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield StripeConnectSettings(
            client_id="ca_console_test",
            secret_key=SecretStr("sk_test_platform"),
            authorize_url=f"http://127.0.0.1:{port}/authorize",
            token_url=f"http://127.0.0.1:{port}/token",
        )
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def console_stack(bootstrap: str, **control: Any) -> AsyncIterator[ConsoleStack]:
    settings = stack_settings(bootstrap)
    accounts = make_accounts(12)
    try:
        async with (
            stripe_stack(settings, keys=(STRIPE_KEY,), customers=0) as stripe,
            stripe_connect() as connect,
        ):
            control = {"oauth_success_redirect_url": "/console/oauth/done", **control}
            # Connecting verifies the key with the local Stripe, never api.stripe.com.
            os.environ[API_BASE_ENV] = stripe.url
            key = SecretStr(stripe.key)
            stripe.settings = stripe.settings.model_copy(update={"credentials_key": key})
            for account in accounts:
                stripe.fake.seed_customer(account.id, currency=(account.currency or "usd").lower())
            with tempfile.TemporaryDirectory(prefix="billsync-console-") as tmp:
                users = Path(tmp) / "users.yaml"
                users.write_text(USERS)
                await publish(
                    settings.kafka_bootstrap_servers,
                    settings.topics.name("accounts"),
                    [(a.id.encode(), a.to_bytes()) for a in accounts],
                )
                async with (
                    running_control_plane(
                        stripe.settings, oauth={"stripe": connect}, users_file=users, **control
                    ) as cp,
                    aiohttp.ClientSession() as http,
                    running_router(stripe.settings),
                    stripe.sink(),
                ):
                    stack = ConsoleStack(stripe, cp, http)
                    await seed(stack, make_bills(accounts, 6, lines=4))
                    yield stack
    finally:
        os.environ.pop(API_BASE_ENV, None)
        await delete_topics_with_prefix(bootstrap, settings.topics.prefix)


async def seed(stack: ConsoleStack, bills: list[Any]) -> None:
    """A Stripe credential, a connected US configuration, a Stripe URL pointed at the
    local Stripe, and a few bills on bill-generated (not routed to anyone yet: the US
    configuration starts disabled so tests choose what flows)."""
    await stack.api(
        "POST",
        "/integrationcredentials",
        json={
            "id": "cred-stripe-test",
            "type": "STRIPE",
            "name": "Stripe test key",
            "apiKey": STRIPE_KEY,
        },
    )
    await stack.api(
        "POST",
        "/integrationconfigs",
        json={
            "id": "cfg-stripe-us",
            "name": "Stripe US and Canada",
            "destination": "STRIPE_TEST",
            "enabled": False,
            "integrationCredentialsId": "cred-stripe-test",
            "restrictedAccountIds": ["acc-0008"],
            "disabledNotificationUserIds": ["ops-lead"],
            "entityConfig": {
                "excludedLineItemTypes": ["MINIMUM_SPEND"],
                "sortLineItemsBy": "SUBTOTAL",
                "accountFilter": "customFields.country IN (US, CA)",
            },
            "destinationConfig": {"poNumberCustomField": "PO Number"},
        },
    )
    await stack.publish_bills(bills)
