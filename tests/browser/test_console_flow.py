"""The console over a live pipeline: a bill becomes a run, a failed run is fixed with an
external mapping and resent, events are actioned, and a replay runs with progress."""

from __future__ import annotations

import random
import re
import uuid
from datetime import UTC, datetime

from playwright.async_api import Page, expect

from shared.contracts import EventType, IntegrationEvent
from shared.sampledata import make_accounts, make_bill
from tests.browser.helpers import until_text
from tests.browser.stack import ConsoleStack
from tests.support.kafka import publish


def bill_for(account_index: int, prefix: str) -> object:
    account = make_accounts(12)[account_index - 1]
    bill = make_bill(account, account_index, random.Random(account_index), lines=3)
    return bill.model_copy(update={"id": f"{prefix}-{uuid.uuid4().hex[:8]}"})


async def test_enable_a_configuration_and_watch_a_bill_become_a_run(
    admin: Page, stack: ConsoleStack
) -> None:
    page = admin
    row = page.locator("tr", has_text="cfg-stripe-us")
    if await row.get_by_role("button", name="Enable Stripe US and Canada").count():
        await row.get_by_role("button", name="Enable Stripe US and Canada").click()
        await expect(page.get_by_text("cfg-stripe-us enabled.")).to_be_visible()
    await expect(row.get_by_text("Enabled", exact=True)).to_be_visible()

    bill = bill_for(1, "bill-watch")  # acc-0001, US
    await stack.publish_bills([bill])
    runs = f"{stack.console_url}/runs?entityId={bill.id}"
    await until_text(page, runs, "#runs tbody", "COMPLETE")
    await page.locator("#runs tbody a").first.click()
    await expect(page.get_by_role("heading", name="At the destination")).to_be_visible()
    run_id = page.url.rsplit("/", 1)[1]
    run = await stack.api("GET", f"/integrationruns/{run_id}")
    link = page.get_by_role("link", name=run["externalId"])
    await expect(link).to_have_attribute("href", run["url"])
    invoices = stack.stripe.invoices_by_bill()
    assert len(invoices[bill.id]) == 1


async def test_fix_a_missing_mapping_in_the_console_and_resend_the_failed_run(
    admin: Page, stack: ConsoleStack
) -> None:
    config_id = f"cfg-mapped-{uuid.uuid4().hex[:6]}"
    await stack.api(
        "POST",
        "/integrationconfigs",
        json={
            "id": config_id,
            "name": "Stripe mapped customers",
            "destination": "STRIPE_TEST",
            "integrationCredentialsId": "cred-stripe-test",
            "accountIds": ["acc-0002"],
            "entityConfig": {
                "useExternalMappingAccountCode": True,
                "enforceExternalMappingsForConfig": True,
            },
        },
    )
    customer = f"cus_{uuid.uuid4().hex[:10]}"
    stack.stripe.fake.seed_customer(customer, currency="gbp")
    bill = bill_for(2, "bill-resend")
    await stack.publish_bills([bill])
    page = admin
    runs = f"{stack.console_url}/runs?entityId={bill.id}&status=ERROR"
    await until_text(page, runs, "#runs tbody", "ERROR")
    await page.locator("#runs tbody a").first.click()
    failed_url = page.url
    await expect(page.locator("pre.error-text")).to_contain_text("no Stripe external mapping")

    # External mappings: create, look up, edit.
    await page.get_by_role("link", name="External mappings").click()
    await page.get_by_role("link", name="New mapping").click()
    await page.get_by_label("External system").select_option("Stripe")
    await page.get_by_label("billsync entity").fill("Account")
    await page.get_by_label("billsync id").fill("acc-0002")
    await page.get_by_label("External table").fill("Customer")
    await page.get_by_label("External id").fill("cus_wrong")
    await page.get_by_label("Parent configuration").select_option(config_id)
    await page.get_by_role("button", name="Save mapping").click()
    await expect(page.get_by_text("saved.")).to_be_visible()
    await page.get_by_label("External id").fill("cus_wrong")
    await page.get_by_role("button", name="Look up").click()
    rows = page.locator("#mappings tbody tr")
    await expect(rows).to_have_count(1)
    await rows.get_by_role("link", name="Edit").click()
    await page.get_by_label("External id").fill(customer)
    await page.get_by_role("button", name="Save mapping").click()
    await expect(page.locator("#mappings")).to_contain_text(customer)
    # A duplicate is refused with the API's message, in the form.
    await page.get_by_role("link", name="New mapping").click()
    await page.get_by_label("billsync id").fill("acc-0002")
    await page.get_by_label("External id").fill("cus_other")
    await page.get_by_label("Parent configuration").select_option(config_id)
    await page.get_by_role("button", name="Save mapping").click()
    await expect(page.get_by_role("alert")).to_contain_text("already maps Account 'acc-0002'")

    await page.goto(failed_url)
    await page.get_by_role("button", name="Resend bill").click()
    await expect(page.get_by_text(f"Bill {bill.id} resent")).to_be_visible()
    await until_text(
        page, f"{stack.console_url}/runs?entityId={bill.id}", "#runs tbody", "COMPLETE"
    )
    invoices = stack.stripe.invoices_by_bill()
    assert [i["customer"] for i in invoices[bill.id]] == [customer]

    # Delete the mapping.
    await page.goto(f"{stack.console_url}/mappings?externalId={customer}")
    page.once("dialog", lambda dialog: dialog.accept())
    await (
        page.locator("#mappings tbody tr").get_by_role("button", name=re.compile("^Delete")).click()
    )
    await expect(page.get_by_text("deleted.")).to_be_visible()
    found = await stack.api("GET", f"/externalmappings?externalId={customer}")
    assert found["data"] == []


async def test_read_an_auto_disable_event_and_mark_it_actioned(
    admin: Page, stack: ConsoleStack
) -> None:
    event = IntegrationEvent(
        id=f"evt-{uuid.uuid4().hex[:8]}",
        event_type=EventType.DISABLED,
        message="disabled by billsync monitor after 10 successive errors",
        integration_config_id="cfg-stripe-us",
        dt_created=datetime.now(UTC),
    )
    await publish(
        stack.settings.kafka_bootstrap_servers,
        stack.settings.topics.name("integration_results"),
        [(b"cfg-stripe-us", event.to_bytes())],
    )
    page = admin
    events = f"{stack.console_url}/events?eventType={EventType.DISABLED.value}"
    await until_text(page, events, ".event-list", event.message)
    card = page.locator("article", has_text=event.message).first
    await expect(card.get_by_role("heading", name="To recover")).to_be_visible()
    await expect(card.get_by_text("Enable the configuration again")).to_be_visible()
    await card.get_by_role("button", name=f"Mark event {event.id} actioned").click()
    await expect(page.get_by_text(f"Event {event.id} marked actioned.")).to_be_visible()
    await expect(page.locator("article", has_text=event.id)).to_have_count(0)
    await page.get_by_label("State").select_option("true")
    await page.get_by_role("button", name="Filter").click()
    done = page.locator("article").filter(
        has=page.get_by_role("button", name=f"Mark event {event.id} actioned")
    )
    await expect(done).to_have_count(0)
    await expect(page.locator(".event-list")).to_contain_text("Actioned")
    await page.locator("article").first.get_by_role("link", name="Open the configuration").click()
    await expect(page.get_by_role("heading", name="Stripe US and Canada")).to_be_visible()
    stored = await stack.api("GET", f"/integrationevents/{event.id}")
    assert stored["actioned"] is True


async def test_replay_dry_run_then_run_with_progress(admin: Page, stack: ConsoleStack) -> None:
    page = admin
    await page.get_by_role("link", name="Replay").click()
    await page.get_by_role("radio", name="Time").check()
    await page.get_by_label("From time (UTC)").fill("2020-01-01T00:00:00Z")
    await page.get_by_label("Accounts").fill("acc-0001")
    await page.get_by_role("button", name="Dry run").click()
    table = page.locator("#dry-run")
    await expect(table).to_contain_text("bill-000001")
    await expect(page.get_by_text("Nothing was published.")).to_be_visible()
    await page.get_by_role("button", name="Run replay").click()
    await expect(page.locator("#job-done")).to_be_visible(timeout=30_000)
    published = int(await page.locator("#job-published").inner_text())
    assert published >= 1
