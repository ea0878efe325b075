"""Small helpers for the browser tests."""

from __future__ import annotations

import asyncio
import time

from playwright.async_api import Page


async def until_text(page: Page, url: str, selector: str, text: str, timeout: float = 30) -> None:
    """Reload `url` until `selector` contains `text` (the data arrives from Kafka)."""
    deadline = time.monotonic() + timeout
    while True:
        await page.goto(url)
        found = await page.locator(selector).all_inner_texts()
        if any(text in t for t in found):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not in {selector} of {url} after {timeout}s: {found}")
        await asyncio.sleep(0.25)  # between reloads only; the check is the page itself


async def csrf_of(page: Page) -> str:
    value = await page.locator("input[name=_csrf]").first.get_attribute("value")
    assert value
    return value
