"""One browser (the system's Chromium) and one console stack for the whole browser suite;
each test gets its own browser context (cookies) and page."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.browser.stack import ConsoleStack, console_stack

CHROMIUM = os.environ.get("BILLSYNC_CHROMIUM", "/usr/bin/chromium")
HAVE_CHROMIUM = Path(CHROMIUM).exists()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.kafka)
            item.add_marker(pytest.mark.browser)


@pytest_asyncio.fixture(scope="session")
async def stack(kafka_bootstrap: str) -> AsyncIterator[ConsoleStack]:
    async with console_stack(kafka_bootstrap) as running:
        yield running


@pytest_asyncio.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        pytest.fail(f"no Chromium at {CHROMIUM}: run deploy/ci/install-browser.sh")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield launched
        await launched.close()


@pytest_asyncio.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(viewport={"width": 1366, "height": 900})
    ctx.set_default_timeout(15_000)
    yield ctx
    await ctx.close()


async def login(page: Page, stack: ConsoleStack, token: str) -> None:
    await page.goto(stack.console_url + "/login")
    await page.get_by_label("API token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/console/configs")


@pytest_asyncio.fixture
async def admin(context: BrowserContext, stack: ConsoleStack) -> Page:
    page = await context.new_page()
    await login(page, stack, stack.control.admin_token)
    return page


@pytest_asyncio.fixture
async def reader(context: BrowserContext, stack: ConsoleStack) -> Page:
    page = await context.new_page()
    await login(page, stack, stack.control.read_token)
    return page
