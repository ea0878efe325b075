"""`make screenshots`: regenerate docs/console/*.png from a running console stack (the
shared broker named by KAFKA_BOOTSTRAP_SERVERS, the system Chromium)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from playwright.async_api import Page, async_playwright

from shared.sampledata import make_accounts, make_bills
from tests.browser.conftest import CHROMIUM, login
from tests.browser.stack import ConsoleStack, console_stack

OUT = Path(__file__).resolve().parents[2] / "docs" / "console"


async def wait_runs(stack: ConsoleStack, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = await stack.api("GET", "/integrationruns?pageSize=200")
        if sum(1 for r in body["data"] if r["status"] not in ("WAITING", "STARTED")) >= count:
            return
        await asyncio.sleep(0.3)
    raise TimeoutError(f"fewer than {count} runs after {timeout}s")


async def data(stack: ConsoleStack) -> None:
    """Runs, errors and events to look at."""
    await stack.api("POST", "/integrationconfigs/cfg-stripe-us/enable")
    await stack.api(
        "POST",
        "/integrationconfigs",
        json={
            "id": "cfg-stripe-mapped",
            "name": "Stripe Europe (mapped customers)",
            "destination": "STRIPE_TEST",
            "integrationCredentialsId": "cred-stripe-test",
            "entityConfig": {
                "useExternalMappingAccountCode": True,
                "accountFilter": "address.country IN (GB, DE, FR)",
            },
        },
    )
    await stack.api(
        "POST",
        "/integrationconfigs",
        json={"id": "cfg-xero", "name": "Xero (finance)", "destination": "XERO"},
    )
    await stack.api(
        "POST",
        "/externalmappings",
        json={
            "externalSystem": "Stripe",
            "externalTable": "Customer",
            "externalId": "acc-0002",
            "m3terEntity": "Account",
            "m3terId": "acc-0002",
            "integrationConfigId": "cfg-stripe-mapped",
        },
    )
    bills = make_bills(make_accounts(12), 12, lines=6, seed=5)
    bills = [b.model_copy(update={"id": b.id.replace("bill-", "bill-s")}) for b in bills]
    await stack.publish_bills(bills)
    await wait_runs(stack, 6)


async def shoot(page: Page, name: str) -> None:
    await page.screenshot(path=str(OUT / f"{name}.png"), full_page=False)
    print(f"docs/console/{name}.png")


async def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    async with console_stack(bootstrap) as stack, async_playwright() as pw:
        await data(stack)
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await browser.new_page(viewport={"width": 1366, "height": 860})
        base = stack.console_url
        await page.goto(base + "/login")
        await shoot(page, "login")
        await login(page, stack, stack.control.admin_token)
        await shoot(page, "configurations")
        await page.goto(base + "/configs/new?entityType=Bill")
        await shoot(page, "wizard-destination")
        await page.goto(base + "/configs/new?entityType=Bill&destination=STRIPE_TEST")
        await page.get_by_label("Name", exact=True).fill("Stripe UK")
        await page.get_by_label("Search Account Ids").fill("GmbH")
        await shoot(page, "wizard-configure")
        await page.get_by_label("Account Filter").fill("customFields.country == ")
        await page.locator("#filter-result pre").wait_for()
        await page.get_by_label("Account Filter").scroll_into_view_if_needed()
        await shoot(page, "wizard-filter-error")
        await page.goto(base + "/configs/cfg-stripe-mapped")
        await shoot(page, "configuration-details")
        await page.goto(base + "/configs/cfg-xero")
        await shoot(page, "configuration-not-connected")
        await page.goto(base + "/configs/cfg-stripe-us/preview")
        await page.locator("#payload").scroll_into_view_if_needed()
        await shoot(page, "preview")
        await page.goto(base + "/runs")
        await shoot(page, "runs")
        await page.goto(base + "/runs?status=ERROR")
        await page.locator("#runs tbody a").first.click()
        await shoot(page, "run-error")
        await page.goto(base + "/events")
        await shoot(page, "events")
        await page.goto(base + "/mappings")
        await shoot(page, "mappings")
        await page.goto(base + "/replay")
        await page.get_by_label("From time (UTC)").fill("2020-01-01")
        await page.get_by_role("button", name="Dry run").click()
        await page.locator("#dry-run").wait_for()
        await shoot(page, "replay-dry-run")
        await browser.close()


if __name__ == "__main__":
    asyncio.run(main())
