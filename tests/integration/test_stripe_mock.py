"""Issue 8.10: Stripe's own request validator checks every request the sink makes.

stripe-mock (`deploy/ci/install-stripe-mock.sh`) validates each request against Stripe's
OpenAPI document and answers with fixtures, statelessly. Every Stripe setting is driven
through the real sink (real broker, dispatch envelopes, the runner, the official SDK)
against it, through a recording proxy: any response of 400 or more is a refused request and
fails the test. The fixtures make the flows see odd answers (an invoice of another customer,
no metadata), so what is asserted is that every request was accepted and that each setting
really produced its parameters, not which run status the odd answers led to.

stripe-mock checks neither string lengths nor decimal formats; the recorder checks the
parameters billsync sends for both (and the local Stripe keeps its own checks).

Locally the test skips, saying so, when stripe-mock is not installed; in CI (CI=true) a
missing stripe-mock fails it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aiohttp import web

from services.router.envelopes import EnvelopeBuilder
from shared.contracts import Bill, IntegrationConfig, RunStatus, Trigger
from shared.settings import Settings
from shared.sinks.invoice_map import InvoiceMapRecord, InvoiceState
from tests.support.builders import account, bill, config, line
from tests.support.kafka import publish
from tests.support.stripe_stack import StripeStack, stripe_stack

pytestmark = pytest.mark.kafka

KEY = "sk_test_123"  # stripe-mock wants a valid-looking test key
# stripe-mock's invoice fixture belongs to this customer: a bill of this account that is
# regenerated finds "its" draft and exercises the update, remove_lines and add_lines path.
FIXTURE_CUSTOMER = "cus_QXg1o8vcGmoR32"
STRING_MAX = 5000
_DECIMAL = re.compile(r"^-?\d+(\.\d{1,12})?$")
_OBJECT_ID = re.compile(r"/(in|ii|il)_[A-Za-z0-9_]+")


def stripe_mock_binary() -> str | None:
    for candidate in (
        os.environ.get("STRIPE_MOCK_BIN"),
        shutil.which("stripe-mock"),
        "/usr/local/bin/stripe-mock",
        str(Path.home() / "go" / "bin" / "stripe-mock"),
    ):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@contextlib.asynccontextmanager
async def running_stripe_mock() -> AsyncIterator[str]:
    binary = stripe_mock_binary()
    if binary is None:
        how = "bash deploy/ci/install-stripe-mock.sh installs it"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"stripe-mock is not installed in CI; {how}")
        pytest.skip(f"stripe-mock is not installed ({how})")
    proc = await asyncio.create_subprocess_exec(
        binary,
        "-http-addr",
        "127.0.0.1:0",
        "-https-addr",
        "127.0.0.1:0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    try:
        address = await asyncio.wait_for(_listening_address(proc.stdout), timeout=30)
        drain = asyncio.create_task(proc.stdout.read())  # never let its pipe fill up
        try:
            yield f"http://{address}"
        finally:
            drain.cancel()
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


async def _listening_address(stdout: asyncio.StreamReader) -> str:
    seen: list[str] = []
    while raw := await stdout.readline():
        text = raw.decode(errors="replace").strip()
        seen.append(text)
        found = re.search(r"Listening for HTTP at address: (\S+)", text)
        if found:
            return found.group(1)
    raise AssertionError(f"stripe-mock did not start: {seen}")


@dataclass
class Exchange:
    method: str
    path: str
    params: dict[str, str]
    status: int
    answer: str

    @property
    def endpoint(self) -> str:
        path = _OBJECT_ID.sub(lambda m: "/{" + m[1] + "}", self.path)
        return f"{self.method} {path}"


@dataclass
class Recorder:
    """A reverse proxy in front of stripe-mock that keeps every request and answer."""

    upstream: str
    exchanges: list[Exchange] = field(default_factory=list)
    session: aiohttp.ClientSession | None = None

    async def forward(self, request: web.Request) -> web.Response:
        assert self.session is not None
        body = await request.read()
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in ("host", "content-length", "transfer-encoding")
        }
        async with self.session.request(
            request.method,
            self.upstream + request.path_qs,
            data=body,
            headers=headers,
        ) as resp:
            answer = await resp.read()
            keep = {
                k: v
                for k, v in resp.headers.items()
                if k.lower() in ("content-type", "request-id", "stripe-version")
            }
        text = body.decode() if body else request.query_string
        self.exchanges.append(
            Exchange(
                request.method,
                request.path,
                dict(parse_qsl(text, keep_blank_values=True)),
                resp.status,
                answer.decode(errors="replace")[:600],
            )
        )
        return web.Response(status=resp.status, body=answer, headers=keep)


@contextlib.asynccontextmanager
async def recording_proxy(upstream: str) -> AsyncIterator[tuple[str, Recorder]]:
    recorder = Recorder(upstream)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder.forward)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as session:
        recorder.session = session
        try:
            yield f"http://127.0.0.1:{port}", recorder
        finally:
            await runner.cleanup()


# ---- every setting ----------------------------------------------------------------------


def stripe_cfg(cid: str, **dest: Any) -> IntegrationConfig:
    return config(cid, "STRIPE_TEST", integrationCredentialsId="cred-1", dest=dest)


def mapping(source: str, target: str, name: str | None = None) -> dict[str, Any]:
    return {"source": source, "target": target, **({"name": name} if name else {})}


MAPPINGS = [
    mapping("bill.sequentialInvoiceNumber", "invoice.custom_field", "Invoice no."),
    mapping("account.customFields.region", "invoice.metadata", "region"),
    mapping("product.customFields.sku", "line.metadata", "sku"),
    mapping("product.customFields.stripe_product", "line.product"),
]

CONFIGS = [
    stripe_cfg("cfg-defaults"),
    stripe_cfg(
        "cfg-price",
        priceDataProductId="prod_default",
        poNumberCustomField="PO Number",
        alwaysShowPriceAndQuantity=True,
        fieldMappings=MAPPINGS,
    ),
    stripe_cfg("cfg-decimal", priceDataProductId="prod_default", sendDecimalQuantities=True),
    stripe_cfg("cfg-decimal-off", priceDataProductId="prod_default"),
    stripe_cfg(
        "cfg-send",
        collectionMethod="send_invoice",
        sendDueDate=True,
        leaveInvoicesAsDrafts=True,
        showZeroQuantityLines=True,
    ),
    stripe_cfg("cfg-days", collectionMethod="send_invoice", daysUntilDue=14),
    stripe_cfg("cfg-override", collectionMethodCustomField="billing_method"),
    stripe_cfg("cfg-skip", skipZeroTotalInvoices=True),
    stripe_cfg("cfg-collapse", companyName="Acme usage", priceDataProductId="prod_default"),
    stripe_cfg(
        "cfg-items",
        createStripeInvoice=False,
        priceDataProductId="prod_default",
        sendDecimalQuantities=True,
        fieldMappings=MAPPINGS[2:],
    ),
    stripe_cfg("cfg-items-amounts", createStripeInvoice=False),
]


def usage_lines(prefix: str) -> list[Any]:
    return [
        line(
            f"{prefix}-calls",
            "USAGE",
            "1218.80",
            quantity="1523.5",
            unit="call",
            averageUnitPrice="0.8",
            description="API calls",
            productCustomFields={"sku": "API-1", "stripe_product": "prod_api"},
        ),
        line(f"{prefix}-seats", "STANDING_CHARGE", "50", quantity="5", averageUnitPrice="10"),
        line(f"{prefix}-tiny", "USAGE", "0.00000000001", quantity="1", description="Tiny"),
        line(f"{prefix}-credit", "CREDIT_MEMO", "-2.50", quantity="1"),
        line(f"{prefix}-zero", "USAGE", "0", quantity="0"),
    ]


def bills_for(cfg: IntegrationConfig) -> list[Bill]:
    cid = cfg.id
    fields: dict[str, Any] = {
        "purchase_order_number": "PO-7",
        "sequential_invoice_number": "INV-0042",
        "start_date": "2026-10-01",
        "end_date": "2026-11-01",
        "due_date": "2026-12-01",
    }
    acc = account(
        f"acc-{cid}",
        customFields={"region": "EMEA", "billing_method": "send_invoice"},
    )
    main = bill(f"bill-{cid}", acc.id, embed=acc, lines=usage_lines(cid), **fields)
    out = [main]
    if cid == "cfg-defaults":
        for currency, amount in (("KWD", "5.124"), ("JPY", "1500.5")):
            out.append(
                bill(
                    f"bill-{cid}-{currency}",
                    acc.id,
                    embed=acc,
                    lines=[line(f"{cid}-{currency}", "USAGE", amount)],
                ).model_copy(update={"currency": currency})
            )
    if cid == "cfg-skip":
        out.append(
            bill(f"bill-{cid}-zero", acc.id, embed=acc, lines=[line(f"{cid}-z", "USAGE", "0")])
        )
    if cid == "cfg-collapse":
        many = [line(f"{cid}-{i}", "USAGE", "1.10") for i in range(251)]
        out = [bill(f"bill-{cid}", acc.id, embed=acc, lines=many)]
    return out


async def publish_envelopes(
    stack: StripeStack, pairs: list[tuple[IntegrationConfig, Bill]], trigger: Trigger
) -> None:
    builder = EnvelopeBuilder()
    records = []
    for cfg, b in pairs:
        [(c, _, body)] = builder.build(b, b.account or account(b.account_id), [cfg], trigger, "t")
        records.append((c.id.encode(), body))
    await publish(
        stack.settings.kafka_bootstrap_servers, stack.settings.topics.dispatch("stripe"), records
    )


def fixture_bill(bill_id: str, version: int, *lines: Any) -> Bill:
    """A bill of the customer that owns stripe-mock's fixture invoice and items."""
    acc = account(FIXTURE_CUSTOMER)
    return bill(bill_id, acc.id, version=version, embed=acc, lines=list(lines))


def regenerations(
    by_id: dict[str, IntegrationConfig],
) -> list[tuple[IntegrationConfig, Bill, Bill]]:
    """(configuration, version 1, version 2): the draft (as stripe-mock answers it) is
    updated, its lines replaced; pending items reconciled; a draft now skipped deleted."""
    return [
        (
            by_id["cfg-price"],
            fixture_bill("bill-regen", 1, *usage_lines("regen-1")),
            fixture_bill("bill-regen", 2, *usage_lines("regen-2")),
        ),
        (
            by_id["cfg-items"],
            fixture_bill("bill-regen-items", 1, *usage_lines("items-1")),
            fixture_bill("bill-regen-items", 2, *usage_lines("items-2")),
        ),
        (
            by_id["cfg-skip"],
            fixture_bill("bill-regen-skip", 1, line("skip-1", "USAGE", "10")),
            fixture_bill("bill-regen-skip", 2, line("skip-2", "USAGE", "0")),
        ),
    ]


async def pending_write(stack: StripeStack, cfg: IntegrationConfig, b: Bill) -> None:
    """An earlier attempt's PENDING map record: the delivery looks the invoice up first."""
    record = InvoiceMapRecord(
        integration_config_id=cfg.id,
        bill_id=b.id,
        bill_version=b.version,
        state=InvoiceState.PENDING,
        updated_at=datetime.now(UTC),
    )
    await publish(
        stack.settings.kafka_bootstrap_servers,
        stack.settings.topics.name("invoice_map"),
        [(record.key.encode(), record.to_bytes())],
    )


async def test_every_setting_is_accepted_by_stripes_request_validator(
    settings: Settings,
) -> None:
    async with (
        running_stripe_mock() as upstream,
        recording_proxy(upstream) as (proxy, recorder),
        stripe_stack(settings, customers=0) as fake_stack,
    ):
        stack = replace(fake_stack, url=proxy)
        await stack.credential("cred-1", KEY)
        by_id = {c.id: c for c in CONFIGS}
        await stack.configs(*CONFIGS)
        recovering = fixture_bill("bill-recover", 1, *usage_lines("recover"))
        await pending_write(stack, by_id["cfg-defaults"], recovering)
        first = [(cfg, b) for cfg in CONFIGS for b in bills_for(cfg)]
        first.append((by_id["cfg-defaults"], recovering))
        regen = regenerations(by_id)
        first += [(cfg, v1) for cfg, v1, _ in regen]
        async with stack.sink():
            await publish_envelopes(stack, first, Trigger.GENERATED)
            await stack.wait_final_runs(len(first), timeout=120)
            await publish_envelopes(stack, [(cfg, v2) for cfg, _, v2 in regen], Trigger.GENERATED)
            runs = await stack.wait_final_runs(len(first) + len(regen), timeout=120)

    refused = [x for x in recorder.exchanges if x.status >= 400]
    assert not refused, "stripe-mock refused:\n" + "\n".join(
        f"{x.method} {x.path} {x.params} -> {x.status} {x.answer}" for x in refused
    )
    assert not [r for r in runs.values() if r.status is RunStatus.AUTH_FAILED]
    _assert_local_rules(recorder.exchanges)
    _assert_every_setting_was_sent(recorder.exchanges)


def _assert_local_rules(exchanges: list[Exchange]) -> None:
    """What stripe-mock does not check: decimal notation and string lengths."""
    for x in exchanges:
        for name, value in x.params.items():
            if name.endswith("_decimal]") or name.endswith("_decimal"):
                assert _DECIMAL.match(value), f"{x.endpoint} {name}={value}: not a plain decimal"
            assert len(value) <= STRING_MAX, f"{x.endpoint} {name}: {len(value)} characters"


def _assert_every_setting_was_sent(exchanges: list[Exchange]) -> None:
    endpoints = {x.endpoint for x in exchanges}
    for wanted in (
        "POST /v1/invoices",
        "POST /v1/invoices/{in}/add_lines",
        "POST /v1/invoices/{in}/finalize",
        "POST /v1/invoiceitems",
        "GET /v1/invoices/{in}",
        "POST /v1/invoices/{in}",
        "GET /v1/invoiceitems",
        "GET /v1/invoices",  # recovery looks before writing
        "POST /v1/invoices/{in}/remove_lines",
        "DELETE /v1/invoices/{in}",  # a draft whose bill is now skipped
    ):
        assert wanted in endpoints, f"{wanted} never sent; sent: {sorted(endpoints)}"

    def created(cid: str, endpoint: str = "POST /v1/invoices") -> dict[str, str]:
        for x in exchanges:
            if x.endpoint == endpoint and x.params.get("metadata[billsync_config_id]") == cid:
                return x.params
        raise AssertionError(f"no {endpoint} for {cid}")

    sent = [p for x in exchanges for p in x.params.items()]
    values = {v for _, v in sent}
    names = {n for n, _ in sent}
    assert created("cfg-defaults")["collection_method"] == "charge_automatically"
    assert "usd" in values and "kwd" in values and "jpy" in values
    price = created("cfg-price")
    assert price["custom_fields[0][name]"] == "PO Number"
    assert price["custom_fields[1][value]"] == "INV-0042"
    assert price["metadata[region]"] == "EMEA"
    assert "prod_api" in values and "API-1" in values  # line.product, line.metadata
    assert any(n.endswith("[quantity_decimal]") for n in names)  # sendDecimalQuantities
    assert "quantity_decimal" in names  # on invoice items too
    send = created("cfg-send")
    assert (send["collection_method"], send["auto_advance"]) == ("send_invoice", "false")
    assert "due_date" in send and "days_until_due" not in send
    assert created("cfg-days")["days_until_due"] == "14"
    assert created("cfg-override")["collection_method"] == "send_invoice"
    assert any(v.startswith("Acme usage — 251 charges") for v in values)
    assert "0.000000001" in values  # a tiny unit amount, in plain notation
    items = created("cfg-items", "POST /v1/invoiceitems")
    assert items["metadata[billsync_bill_id]"] == "bill-cfg-items"
    created("cfg-items-amounts", "POST /v1/invoiceitems")
    skipped = [x for x in exchanges if "bill-cfg-skip-zero" in x.params.values()]
    assert not skipped  # a skipped bill costs no call
