"""The console in a real browser: the Create Integration wizard for every destination,
refusals with the API's own messages, connecting a credential, previews, roles, CSRF."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.async_api import BrowserContext, Page, expect

from services.control.console.data import sink_built
from shared.contracts import Destination
from tests.browser.helpers import csrf_of
from tests.browser.stack import STRIPE_KEY, ConsoleStack
from tests.support.control import STRIPE_ACCESS

LABELS = {
    "STRIPE": "Stripe",
    "STRIPE_TEST": "Stripe (Test mode)",
    "PADDLE": "Paddle",
    "PADDLE_SANDBOX": "Paddle (Sandbox mode)",
    "SALESFORCE": "Salesforce",
    "XERO": "Xero",
}
# One destination setting per destination, changed from its default in the wizard.
SETTING = {
    "STRIPE": ("PO Number Custom Field", "PO Number", "poNumberCustomField"),
    "STRIPE_TEST": ("Days Until Due", "14", "daysUntilDue"),
    "PADDLE": ("Tax Category", "digital-goods", "taxCategory"),
    "PADDLE_SANDBOX": ("Payment Terms Frequency", "45", "paymentTermsFrequency"),
    "SALESFORCE": ("Trigger Type", "SCHEDULE", "triggerType"),
    "XERO": ("Split Usage Line Items", "ITEM_PER_USAGE_BAND", "splitUsageLineItems"),
}


@pytest.mark.parametrize("destination", list(LABELS))
async def test_wizard_creates_a_configuration_for_every_destination(
    admin: Page, stack: ConsoleStack, destination: str
) -> None:
    page = admin
    await page.get_by_role("link", name="Create Integration").click()
    await expect(page.get_by_label("Entity type")).to_have_value("Bill")
    await page.get_by_role("button", name="Continue").click()

    name_tag = page.locator(
        ".dest-name", has_text=re.compile(f"^{re.escape(LABELS[destination])}$")
    )
    card = page.locator("label.dest-card", has=name_tag)
    not_built = card.get_by_text("Sink not built yet")
    await expect(not_built).to_have_count(0 if sink_built(Destination(destination)) else 1)
    await card.click()
    await page.get_by_role("button", name="Continue").click()
    await expect(page.get_by_text("Configure and create")).to_be_visible()
    # Every setting shows the vendor page's explanation.
    await expect(
        page.get_by_text("Enable this if you only want Bills to be sent when")
    ).to_be_visible()

    name = f"{LABELS[destination]} {uuid.uuid4().hex[:6]}"
    await page.get_by_label("Name", exact=True).fill(name)
    # The searchable account picker: search, then choose.
    allow = page.locator("fieldset", has=page.get_by_text("Account Ids", exact=True))
    await allow.get_by_role("searchbox").fill("acc-0003")
    await expect(allow.locator(".picker-item:visible")).to_have_count(1)
    await allow.get_by_role("checkbox", name=re.compile("acc-0003")).check()
    await page.get_by_label("Only Send Bill On Approval").check()
    await page.get_by_label("Minimum spend", exact=True).check()
    label, value, field = SETTING[destination]
    control = page.get_by_label(re.compile(f"^{re.escape(label)}( \\(optional\\))?$"))
    if await control.evaluate("e => e.tagName") == "SELECT":
        await control.select_option(value)
    else:
        await control.fill(value)
    await page.get_by_role("button", name="Create Integration").click()

    await expect(page.get_by_role("heading", name=name)).to_be_visible()
    await expect(page.get_by_text("This integration is not connected")).to_be_visible()
    config_id = await page.locator("#config-id").inner_text()
    stored = await stack.api("GET", f"/integrationconfigs/{config_id}")
    assert stored["destination"] == destination
    assert stored["accountIds"] == ["acc-0003"]
    assert stored["entityConfig"]["onlySendBillOnApproval"] is True
    assert stored["entityConfig"]["excludedLineItemTypes"] == ["MINIMUM_SPEND"]
    assert str(stored["destinationConfig"][field]) == value


async def test_a_bad_filter_is_refused_live_and_on_submit_with_the_api_message(
    admin: Page, stack: ConsoleStack
) -> None:
    page = admin
    await page.goto(stack.console_url + "/configs/new?entityType=Bill&destination=STRIPE_TEST")
    await page.get_by_label("Name", exact=True).fill("bad filter")
    bad = "customFields.country == UK AND"
    await page.get_by_label("Account Filter").fill(bad)
    live = page.locator("#filter-result pre")
    await expect(live).to_contain_text("^")
    body = {"name": "x", "destination": "STRIPE_TEST", "entityConfig": {"accountFilter": bad}}
    async with stack.http.post(
        stack.control.base_url + "/integrationconfigs",
        json=body,
        headers=stack.control.admin_headers,
    ) as resp:
        assert resp.status == 400
        api = await resp.json()
    api_message = api["error"]["details"][0]["message"]
    assert (await live.inner_text()).strip() == api_message.strip()

    # Another refusal only the API's validation knows: a negative number of days.
    await page.get_by_label("Days Until Due").fill("-3")
    await page.get_by_role("button", name="Create Integration").click()
    problems = page.locator("#form-problems")
    await expect(problems).to_contain_text("the configuration has 2 problem(s); see details")
    await expect(page.locator("#err-entityConfig-accountFilter pre.caret")).to_have_text(
        api_message
    )
    await expect(page.locator("#err-destinationConfig-daysUntilDue")).to_contain_text(
        "greater than or equal to 0"
    )
    # What was typed is kept.
    await expect(page.get_by_label("Account Filter")).to_have_value(bad)


async def test_connect_a_credential_then_disconnect_without_showing_a_secret(
    admin: Page, stack: ConsoleStack
) -> None:
    config_id = f"cfg-connect-{uuid.uuid4().hex[:6]}"
    await stack.api(
        "POST",
        "/integrationconfigs",
        json={"id": config_id, "name": "To connect", "destination": "STRIPE_TEST"},
    )
    page = admin
    await page.goto(f"{stack.console_url}/configs/{config_id}")
    await expect(page.get_by_text("This integration is not connected")).to_be_visible()
    await page.get_by_role("button", name="Add Credential").click()
    dialog = page.get_by_role("dialog", name="Select one integration credential")
    await dialog.get_by_role("radio", name=re.compile("Stripe test key")).check()
    await dialog.get_by_role("button", name="Confirm").click()
    await expect(page.get_by_text("Connected with credential cred-stripe-test.")).to_be_visible()
    await expect(page.locator(".page-head .badge", has_text="CONNECTED")).to_have_text("CONNECTED")
    await expect(page.get_by_role("button", name="Update Credential")).to_be_visible()
    html = await page.content()
    assert STRIPE_KEY not in html and STRIPE_KEY[:12] not in html
    stored = await stack.api("GET", f"/integrationconfigs/{config_id}/connection")
    assert stored["status"] == "CONNECTED"

    await page.get_by_role("button", name="Disconnect").click()
    await expect(page.get_by_text("This integration is not connected")).to_be_visible()
    stored = await stack.api("GET", f"/integrationconfigs/{config_id}/connection")
    assert stored["status"] == "NOT_CONNECTED"


async def test_preview_shows_matching_accounts_and_the_exact_stripe_payload(
    admin: Page, stack: ConsoleStack
) -> None:
    page = admin
    await page.goto(stack.console_url + "/configs/cfg-stripe-us/preview")
    rows = page.locator("#account-matches tbody tr")
    await expect(rows.filter(has_text="acc-0001")).to_contain_text("Matches")
    await expect(rows.filter(has_text="acc-0007")).to_contain_text("Matches")  # CA
    await expect(rows.filter(has_text="acc-0008")).to_contain_text("in Restricted Account Ids")
    await expect(rows.filter(has_text="acc-0002")).to_contain_text(
        "the account filter is false for it"
    )
    await page.get_by_label("Bill", exact=True).select_option("bill-000001")  # acc-0001, US
    await page.get_by_role("button", name="Show payload").click()
    payload = page.locator("#payload")
    await expect(payload).to_contain_text('"customer_id": "acc-0001"')
    await expect(payload).to_contain_text('"billsync_config_id": "cfg-stripe-us"')
    await expect(payload).not_to_contain_text("MINIMUM_SPEND")

    # The wizard previews an unsaved configuration the same way.
    await page.goto(stack.console_url + "/configs/new?entityType=Bill&destination=STRIPE")
    await page.get_by_label("Account Filter").fill("address.country == GB")
    await page.get_by_role("button", name="Preview").click()
    await expect(
        page.get_by_role("heading", name="Preview of the unsaved configuration")
    ).to_be_visible()
    await expect(rows.filter(has_text="acc-0002")).to_contain_text("Matches")
    await expect(rows.filter(has_text="acc-0001")).to_contain_text("the account filter is false")


async def test_a_read_only_user_sees_no_write_controls_and_is_refused(
    reader: Page, context: BrowserContext, stack: ConsoleStack
) -> None:
    page = reader
    await expect(page.get_by_text("Read-only")).to_be_visible()
    await expect(page.get_by_role("link", name="Create Integration")).to_have_count(0)
    await expect(page.get_by_role("button", name=re.compile("^(Enable|Disable)"))).to_have_count(0)
    await page.goto(stack.console_url + "/configs/cfg-stripe-us")
    for name in ("Edit", "Disable", "Enable", "Add Credential", "Update Credential", "Disconnect"):
        await expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
    await page.goto(stack.console_url + "/configs/new?entityType=Bill&destination=STRIPE")
    await expect(page.get_by_role("button", name="Create Integration")).to_have_count(0)
    await expect(page.get_by_role("button", name="Preview")).to_be_visible()
    await page.goto(stack.console_url + "/events?actioned=false")
    await expect(page.get_by_role("button", name=re.compile("^Mark event"))).to_have_count(0)
    await page.goto(stack.console_url + "/replay")
    await expect(page.get_by_role("button", name="Run replay")).to_have_count(0)
    before = await stack.api("GET", "/integrationconfigs/cfg-stripe-us")
    # With a valid CSRF token of the reader's own session, a write is still refused.
    token = await csrf_of(page)
    action = "disable" if before["enabled"] else "enable"
    resp = await context.request.post(
        f"{stack.console_url}/configs/cfg-stripe-us/{action}", form={"_csrf": token}
    )
    assert resp.status == 403
    assert "read-only" in await resp.text()
    after = await stack.api("GET", "/integrationconfigs/cfg-stripe-us")
    assert after["version"] == before["version"]


async def test_a_form_post_without_csrf_token_is_refused(
    admin: Page, context: BrowserContext, stack: ConsoleStack
) -> None:
    cookies = {c["name"]: c for c in await context.cookies()}
    session = cookies["billsync_console"]
    assert session["httpOnly"] is True and session["sameSite"] == "Strict"
    before = await stack.api("GET", "/integrationconfigs/cfg-stripe-us")
    action = "disable" if before["enabled"] else "enable"
    url = f"{stack.console_url}/configs/cfg-stripe-us/{action}"
    for form in ({}, {"_csrf": "forged"}):
        resp = await context.request.post(url, form=form)
        assert resp.status == 403
        assert "no valid CSRF token" in await resp.text()
    after = await stack.api("GET", "/integrationconfigs/cfg-stripe-us")
    assert after["version"] == before["version"]


async def test_connect_through_stripe_oauth_and_come_back_to_the_console(
    admin: Page, stack: ConsoleStack
) -> None:
    config_id = f"cfg-oauth-{uuid.uuid4().hex[:6]}"
    await stack.api(
        "POST",
        "/integrationconfigs",
        json={"id": config_id, "name": "Connect by OAuth", "destination": "STRIPE_TEST"},
    )
    page = admin
    await page.goto(f"{stack.console_url}/configs/{config_id}")
    await page.get_by_role("button", name="Connect via Stripe OAuth").click()
    await page.wait_for_url(f"**/console/configs/{config_id}?connected=1")
    await expect(page.get_by_text("Connected through OAuth.")).to_be_visible()
    await expect(page.get_by_text("This integration is not connected")).to_have_count(0)
    await expect(page.get_by_text(f"oauth-stripe-{config_id}").first).to_be_visible()
    assert STRIPE_ACCESS not in await page.content()


UNLABELLED = """() => [...document.querySelectorAll(
    'input:not([type=hidden]), select, textarea, button')].filter(e =>
    !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim()
).map(e => e.outerHTML.slice(0, 120))"""


async def test_every_control_is_labelled_and_the_id_can_be_copied(
    admin: Page, stack: ConsoleStack
) -> None:
    pages = [
        "/configs",
        "/configs/new",
        "/configs/new?entityType=Bill",
        "/configs/new?entityType=Bill&destination=STRIPE",
        "/configs/new?entityType=Bill&destination=XERO",
        "/configs/cfg-stripe-us",
        "/configs/cfg-stripe-us/preview",
        "/runs",
        "/events",
        "/mappings",
        "/mappings/new",
        "/replay",
    ]
    page = admin
    for path in pages:
        await page.goto(stack.console_url + path)
        assert await page.evaluate(UNLABELLED) == [], path
    # Keyboard: the skip link is the first stop and leads to the content.
    await page.goto(stack.console_url + "/configs/cfg-stripe-us")
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    await page.get_by_role("button", name="Copy the configuration id").click()
    await expect(page.get_by_text("Copied")).to_be_visible()


async def test_edit_a_configuration_and_a_stale_edit_is_refused(
    admin: Page, stack: ConsoleStack
) -> None:
    config_id = f"cfg-edit-{uuid.uuid4().hex[:6]}"
    await stack.api(
        "POST",
        "/integrationconfigs",
        json={"id": config_id, "name": "Before", "destination": "SALESFORCE"},
    )
    page = admin
    await page.goto(f"{stack.console_url}/configs/{config_id}/edit")
    await page.get_by_label("Name", exact=True).fill("After")
    await page.get_by_label("Trigger Type").select_option("SCHEDULE")
    await page.get_by_role("button", name="Save changes").click()
    await expect(page.get_by_text("Saved.")).to_be_visible()
    stored = await stack.api("GET", f"/integrationconfigs/{config_id}")
    assert stored["name"] == "After" and stored["version"] == 2
    assert stored["destinationConfig"]["triggerType"] == "SCHEDULE"

    # Someone else changes it while this form is open: the save is refused, not lost.
    await page.goto(f"{stack.console_url}/configs/{config_id}/edit")
    await stack.api("POST", f"/integrationconfigs/{config_id}/disable")
    await page.get_by_label("Name", exact=True).fill("Stale")
    await page.get_by_role("button", name="Save changes").click()
    await expect(page.get_by_role("alert")).to_contain_text("is at version 3, not 2")
    stored = await stack.api("GET", f"/integrationconfigs/{config_id}")
    assert stored["name"] == "After"
