"""The web pages in a real browser (Debian's Chromium, driven by Playwright) against the real
stack: register through the form and watch the status turn "sent", open the link from the
email, confirm, sign in; a reused link, an expired link, a bad password next to its field, a
password reset; a refused address with its reason and a resend that waits for the cooldown."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, expect

from registration.devtools.launcher import free_port
from registration.devtools.smtp_sink import first_link
from registration.domain.statuses import RegistrationStatus
from registration.entrypoints.grpc.client import open_channel
from registration.v1 import registration_pb2 as pb
from registration.v1 import registration_pb2_grpc as pb_grpc
from tests.integration.browser import chromium, page_for, web_front
from tests.integration.harness import Stack
from tests.integration.mail_world import MailWorld, run_mail_world

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as browser:
        yield browser


@pytest.fixture
async def page(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    async with page_for(browser, request.node.name) as page:
        yield page


def new_address(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}@example.com"


async def register_in_the_browser(page: Page, base: str, address: str, password: str) -> None:
    await page.goto(f"{base}/")
    await page.fill("#email", address)
    await page.fill("#password", password)
    await page.click("button[type=submit]")


async def link_for(stack: Stack, address: str, count: int = 1) -> str:
    message = (await stack.wait_for_message(address, count=count))[count - 1]
    link = first_link(message)
    assert link is not None
    return link


async def test_register_watch_the_email_go_out_confirm_and_sign_in(
    stack: Stack, page: Page
) -> None:
    base = stack.devstack.env["PUBLIC_BASE_URL"]
    address = new_address("browser")
    await register_in_the_browser(page, base, address, PASSWORD)

    await expect(page.locator("h1")).to_have_text("Check your inbox")
    # The page polls the delivery status by itself: pending, then sent.
    await expect(page.locator("#email-status")).to_have_attribute("data-status", "SENT")
    await expect(page.locator("#email-status")).to_have_text("sent")

    link = await link_for(stack, address)
    assert link.startswith(f"{base}/verify?token=")
    await page.goto(link)
    await expect(page.locator("h1")).to_have_text("Confirm your email address")
    assert stack.users(address)[0].status is RegistrationStatus.PENDING_VERIFICATION
    await page.click("#confirm")
    await expect(page.locator("#outcome")).to_have_attribute("data-outcome", "activated")

    await page.click("text=sign in")
    await page.fill("#email", address)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await expect(page.locator("#outcome")).to_have_attribute("data-outcome", "signed-in")


async def test_a_reused_link_says_the_account_is_already_active(
    stack: Stack, stub: pb_grpc.RegistrationServiceStub, page: Page
) -> None:
    address = new_address("reused")
    await stub.RegisterUser(pb.RegisterUserRequest(email=address, password=PASSWORD))
    link = await link_for(stack, address)
    for outcome in ("activated", "already-active"):
        await page.goto(link)
        await page.click("#confirm")
        await expect(page.locator("#outcome")).to_have_attribute("data-outcome", outcome)
    await expect(page.locator("h1")).to_have_text("Your account is already active")


async def test_an_expired_link_says_to_register_again(stack: Stack, page: Page) -> None:
    # A registration made through a second server with a short verification timeout.
    short = f"127.0.0.1:{free_port()}"
    stack.devstack.start_server(
        "server-short-for-browser",
        {
            "GRPC_ADDRESS": short,
            "SERVER_METRICS_ADDRESS": "",
            "VERIFICATION_TIMEOUT": "3s",
            "VERIFICATION_REMINDER": "false",
        },
    )
    try:
        address = new_address("expired")
        async with open_channel(stack.settings, short) as channel:
            await pb_grpc.RegistrationServiceStub(channel).RegisterUser(
                pb.RegisterUserRequest(email=address, password=PASSWORD)
            )
        link = await link_for(stack, address)
        deadline = asyncio.get_running_loop().time() + 60
        while stack.users(address)[0].status is not RegistrationStatus.EXPIRED:
            assert asyncio.get_running_loop().time() < deadline, "never expired"
            await asyncio.sleep(0.2)
    finally:
        stack.devstack.stop("server-short-for-browser")

    await page.goto(link)
    await page.click("#confirm")
    await expect(page.locator("#outcome")).to_have_attribute("data-outcome", "expired")
    await expect(page.locator("text=Register again")).to_be_visible()


async def test_a_bad_password_and_a_taken_address_show_next_to_their_fields(
    stack: Stack, stub: pb_grpc.RegistrationServiceStub, page: Page
) -> None:
    base = stack.devstack.env["PUBLIC_BASE_URL"]
    await register_in_the_browser(page, base, new_address("short"), "short")
    problem = page.locator(".problem[data-field=password]")
    await expect(problem).to_have_text("Must be at least 15 characters.")
    await expect(page.locator("#password")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator(".problem[data-field=email]")).to_have_count(0)

    taken = new_address("taken")
    await stub.RegisterUser(pb.RegisterUserRequest(email=taken, password=PASSWORD))
    await register_in_the_browser(page, base, taken, PASSWORD)
    await expect(page.locator(".problem[data-field=email]")).to_contain_text(
        "already has an account"
    )
    await expect(page.locator("#email")).to_have_value(taken)


async def test_a_password_reset_through_the_pages(
    stack: Stack, stub: pb_grpc.RegistrationServiceStub, page: Page
) -> None:
    base = stack.devstack.env["PUBLIC_BASE_URL"]
    address = new_address("reset")
    await stub.RegisterUser(pb.RegisterUserRequest(email=address, password=PASSWORD))
    await page.goto(await link_for(stack, address))
    await page.click("#confirm")
    await stack.wait_for_message(address, count=2)  # the welcome email (no link)

    await page.goto(f"{base}/forgot")
    await page.fill("#email", address)
    await page.click("button[type=submit]")
    await expect(page.locator("#outcome")).to_have_attribute("data-outcome", "sent")
    reset_link = await link_for(stack, address, count=3)
    assert reset_link.startswith(f"{base}/reset?token=")

    await page.goto(reset_link)
    await page.fill("#new_password", "a brand new passphrase")
    await page.fill("#repeat_password", "a different passphrase")
    await page.click("button[type=submit]")
    await expect(page.locator(".problem[data-field=repeat_password]")).to_be_visible()
    await page.fill("#new_password", "a brand new passphrase")
    await page.fill("#repeat_password", "a brand new passphrase")
    await page.click("button[type=submit]")
    await expect(page.locator("#outcome")).to_have_attribute("data-outcome", "changed")

    await page.goto(f"{base}/sign-in")
    await page.fill("#email", address)
    await page.fill("#password", "a brand new passphrase")
    await page.click("button[type=submit]")
    await expect(page.locator("#outcome")).to_have_attribute("data-outcome", "signed-in")


@pytest.fixture(scope="module")
async def world(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MailWorld]:
    root = tmp_path_factory.mktemp("browser-world")
    async for world in run_mail_world(stack, root, verification_reminder="false"):
        yield world


async def test_a_refused_address_shows_why_and_a_resend_waits_for_its_cooldown(
    world: MailWorld, page: Page
) -> None:
    address = new_address("refused")
    world.smtp.refuse_always("550 5.1.1 mailbox unavailable", recipient=address)
    async with web_front(world.settings, world.grpc_address) as base:
        await register_in_the_browser(page, base, address, PASSWORD)
        await expect(page.locator("#email-status")).to_have_attribute("data-status", "FAILED")
        await expect(page.locator("#email-reason")).to_contain_text("refused the address")

        # The cooldown (10 s here) still runs: the button waits and says how long.
        resend = page.locator("#resend")
        await expect(resend).to_be_disabled()
        await expect(page.locator("#resend-when")).to_contain_text("allowed again in")

        world.smtp.clear()  # the mailbox works again
        await expect(resend).to_be_enabled(timeout=30_000)
        await resend.click()
        await expect(page.locator(".notice")).to_contain_text("A new email is on its way")
        await expect(page.locator("#email-status")).to_have_attribute(
            "data-status", "SENT", timeout=30_000
        )
        [message] = await world.smtp.wait_for(address)
        assert first_link(message)
