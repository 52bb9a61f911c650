"""The web pages over plain HTTP against the real stack: a GET of a link never uses its token,
every form needs its CSRF token, the headers pages with tokens need, no token in the access
log, nothing loaded from elsewhere, and a status that names no one."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from registration.domain.statuses import RegistrationStatus
from registration.entrypoints.web.security import CONTENT_SECURITY_POLICY
from registration.v1 import registration_pb2 as pb
from registration.v1 import registration_pb2_grpc as pb_grpc
from tests.integration.harness import Stack, token_of

PASSWORD = "correct horse battery staple"


@pytest.fixture
async def web(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.devstack.env["PUBLIC_BASE_URL"]) as client:
        yield client


async def csrf(web: httpx.AsyncClient) -> str:
    """The form token, as a browser gets it: with the first page (which replaces a cookie
    that is not one of the site's own)."""
    await web.get("/")
    token = web.cookies.get("csrf")
    assert token
    return token


async def registered(stack: Stack, stub: pb_grpc.RegistrationServiceStub) -> tuple[str, str]:
    address = f"web-{uuid.uuid4().hex[:8]}@example.com"
    await stub.RegisterUser(pb.RegisterUserRequest(email=address, password=PASSWORD))
    [message] = await stack.wait_for_message(address)
    return address, token_of(message)


@pytest.mark.parametrize(
    "path", ["/", "/verify?token=x", "/reset?token=x", "/forgot", "/sign-in", "/static/app.css"]
)
async def test_every_page_has_the_headers_pages_with_tokens_need(
    web: httpx.AsyncClient, path: str
) -> None:
    reply = await web.get(path)
    assert reply.status_code == 200
    assert reply.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert reply.headers["referrer-policy"] == "no-referrer"
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["x-frame-options"] == "DENY"
    assert reply.headers["cache-control"] == "no-store"


async def test_a_get_of_the_link_never_uses_the_token(
    stack: Stack, stub: pb_grpc.RegistrationServiceStub, web: httpx.AsyncClient
) -> None:
    address, token = await registered(stack, stub)
    for _ in range(2):  # a mail scanner, a link preview
        page = await web.get("/verify", params={"token": token})
        assert page.status_code == 200 and "Confirm your email address" in page.text
    assert stack.users(address)[0].status is RegistrationStatus.PENDING_VERIFICATION

    form = {"token": token, "csrf_token": await csrf(web)}
    activated = await web.post("/verify", data=form)
    assert 'data-outcome="activated"' in activated.text
    assert stack.users(address)[0].status is RegistrationStatus.ACTIVE
    again = await web.post("/verify", data=form)
    assert 'data-outcome="already-active"' in again.text


FORMS = ["/register", "/verify", "/reset", "/forgot", "/sign-in", "/registrations/{id}/resend"]


@pytest.mark.parametrize("path", FORMS)
@pytest.mark.parametrize("csrf_token", [None, "", "forged-token"])
async def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(
    stack: Stack,
    stub: pb_grpc.RegistrationServiceStub,
    web: httpx.AsyncClient,
    path: str,
    csrf_token: str | None,
) -> None:
    owner, token = await registered(stack, stub)
    [pending] = stack.users(owner)
    await csrf(web)  # the browser has its cookie; the form lacks the matching field
    address = f"forged-{uuid.uuid4().hex[:8]}@example.com"
    # Every field any of the forms reads, filled in as a real submission would be.
    form = {"email": address, "password": PASSWORD, "token": token, "new_password": PASSWORD}
    if csrf_token is not None:
        form["csrf_token"] = csrf_token
    before = stack.row_counts()
    refused = await web.post(path.format(id=pending.registration_id), data=form)
    assert refused.status_code == 403
    assert stack.row_counts() == before and stack.users(address) == []
    [after] = stack.users(owner)
    # Not verified, no new link, its password unchanged.
    assert (after.status, after.verification_token_hash, after.password_hash) == (
        pending.status,
        pending.verification_token_hash,
        pending.password_hash,
    )


@pytest.mark.parametrize("planted", ["chosen-by-the-attacker", "a-nonce.a-made-up-signature"])
async def test_a_csrf_cookie_planted_by_someone_else_is_worth_nothing(
    stack: Stack, web: httpx.AsyncClient, planted: str
) -> None:
    # As a sibling subdomain could set it, with the same value in the forged form.
    web.cookies.set("csrf", planted, domain=httpx.URL(str(web.base_url)).host)
    address = f"planted-{uuid.uuid4().hex[:8]}@example.com"
    form = {"email": address, "password": PASSWORD, "csrf_token": planted}
    refused = await web.post("/register", data=form)
    assert refused.status_code == 403
    assert stack.users(address) == []
    # The page then hands out a cookie of its own, which works.
    form["csrf_token"] = await csrf(web)
    assert form["csrf_token"] != planted
    accepted = await web.post("/register", data=form)
    assert accepted.status_code == 303
    assert accepted.headers["location"].startswith("/registrations/")


async def test_no_token_reaches_the_access_log(
    stack: Stack, stub: pb_grpc.RegistrationServiceStub, web: httpx.AsyncClient
) -> None:
    _, token = await registered(stack, stub)
    await web.get("/verify", params={"token": token})
    await web.get("/reset", params={"token": token})
    log = (stack.var_dir / "logs" / "web.log").read_text()
    assert "GET /verify 200" in log and "GET /reset 200" in log
    assert token not in log and "token=" not in log


async def test_every_asset_is_served_from_this_site(web: httpx.AsyncClient) -> None:
    page = await web.get("/")
    references = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert references and all(r.startswith("/") for r in references), references
    for asset in ("/static/app.css", "/static/status.js"):
        assert (await web.get(asset)).status_code == 200


async def test_the_status_a_page_polls_names_no_one(
    stack: Stack, stub: pb_grpc.RegistrationServiceStub, web: httpx.AsyncClient
) -> None:
    address = f"status-{uuid.uuid4().hex[:8]}@example.com"
    reply = await stub.RegisterUser(pb.RegisterUserRequest(email=address, password=PASSWORD))
    await stack.wait_for_message(address)
    status = await web.get(f"/registrations/{reply.registration_id}/status.json")
    assert status.json()["registration"] == "PENDING_VERIFICATION"
    assert status.json()["email"] in ("PENDING", "SENT")
    assert address not in status.text and address.split("@")[0] not in status.text
    missing = await web.get("/registrations/" + "a" * 26 + "_" + "0" * 16 + "/status.json")
    assert missing.status_code == 404
    assert (await web.get("/healthz")).text == "ok"
