"""A real browser for the web pages: Debian's Chromium driven by Playwright (its own browser
download is never used). Where Chromium is missing the browser tests skip and say why; under
CI=true they fail instead. Each test leaves a screenshot of its final page under
test-output/screenshots/."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import Browser, Page, async_playwright

from registration.devtools.launcher import free_port, wait_for_port
from registration.entrypoints.web.app import AccessLog, create_app
from registration.settings import Settings

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
# Headless, as root, on a machine without internet: no sandbox, no background connections.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    reason = f"no Chromium at {CHROMIUM} (apt-get install -y chromium, or set CHROMIUM)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: the browser tests must run, but there is {reason}")
    pytest.skip(reason)


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    require_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


@contextlib.asynccontextmanager
async def page_for(browser: Browser, test_name: str) -> AsyncIterator[Page]:
    """A fresh page (its own cookies); a screenshot of where it ended when the test ends."""
    context = await browser.new_context()
    page = await context.new_page()
    try:
        yield page
    finally:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
        with contextlib.suppress(Exception):
            await page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
        await context.close()


@contextlib.asynccontextmanager
async def web_front(settings: Settings, grpc_address: str) -> AsyncIterator[str]:
    """The web pages served in this process, in front of the gRPC server at `grpc_address`;
    their base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            AccessLog(create_app(settings, grpc_target=grpc_address)),
            host="127.0.0.1",
            port=port,
            access_log=False,
            log_config=None,
        )
    )
    serving = asyncio.create_task(server.serve())
    await asyncio.to_thread(wait_for_port, "127.0.0.1", port, timeout=30)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
