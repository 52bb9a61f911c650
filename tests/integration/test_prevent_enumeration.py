"""PREVENT_ENUMERATION: a taken address gets the answer a new one gets, and its owner an email
telling that someone tried; repeated attempts within the cooldown send nothing more."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import httpx
import pytest

from registration.devtools.launcher import free_port
from registration.entrypoints.grpc.client import open_channel
from registration.v1 import registration_pb2 as pb
from registration.v1 import registration_pb2_grpc as pb_grpc
from tests.integration.harness import Stack

PASSWORD = "correct horse battery staple"


async def test_taken_address_answers_like_a_new_one_and_tells_the_owner(stack: Stack) -> None:
    address = f"hidden-{uuid.uuid4().hex[:8]}@example.com"
    hidden_address = f"127.0.0.1:{free_port()}"
    stack.devstack.start_server(
        "server-hidden",
        {
            "GRPC_ADDRESS": hidden_address,
            "SERVER_METRICS_ADDRESS": "",
            "PREVENT_ENUMERATION": "true",
        },
    )
    try:
        async with open_channel(stack.settings, hidden_address) as channel:
            stub = pb_grpc.RegistrationServiceStub(channel)
            request = pb.RegisterUserRequest(email=address, password=PASSWORD)
            first = await stub.RegisterUser(request)
            [verification] = await stack.wait_for_message(address)

            again = await stub.RegisterUser(request)
            third = await stub.RegisterUser(request)

            for reply in (again, third):
                assert reply.status == first.status == pb.REGISTRATION_STATUS_PENDING_VERIFICATION
                assert reply.registration_id != first.registration_id
                assert len(reply.registration_id) == len(first.registration_id)
                assert reply.expires_at.seconds >= first.expires_at.seconds
            messages = await stack.wait_for_message(address, count=2)
            notice = messages[1]
            assert "Someone tried to register" in notice["Subject"]
            assert "/verify?token=" not in notice.get_body(preferencelist=("plain",)).get_content()

            # The third attempt fell within the cooldown: no third email, one account.
            await asyncio.sleep(2)
            assert len(stack.messages_to(address)) == 2
            assert len(stack.users(address)) == 1
            assert (
                verification is messages[0]
                or verification["Message-ID"] == messages[0]["Message-ID"]
            )

            # No registration's status is shown to the public, the owner's or the taken one's.
            for shown in (first, again):
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stub.GetRegistrationStatus(
                        pb.GetRegistrationStatusRequest(registration_id=shown.registration_id)
                    )
                assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION

            # Invalid input is still named precisely: it reveals nothing about accounts.
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await stub.RegisterUser(pb.RegisterUserRequest(email=address, password="short"))
            assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    finally:
        stack.devstack.stop("server-hidden")


async def test_the_web_pages_show_a_taken_address_as_they_show_a_new_one(stack: Stack) -> None:
    hidden_address = f"127.0.0.1:{free_port()}"
    base = f"http://127.0.0.1:{free_port()}"
    stack.devstack.start_server(
        "server-hidden-web",
        {
            "GRPC_ADDRESS": hidden_address,
            "SERVER_METRICS_ADDRESS": "",
            "PREVENT_ENUMERATION": "true",
        },
    )
    stack.devstack.start_web(
        "web-hidden",
        {"GRPC_ADDRESS": hidden_address, "PUBLIC_BASE_URL": base, "PREVENT_ENUMERATION": "true"},
    )
    try:
        taken = f"taken-{uuid.uuid4().hex[:8]}@example.com"
        async with open_channel(stack.settings, hidden_address) as channel:
            await pb_grpc.RegistrationServiceStub(channel).RegisterUser(
                pb.RegisterUserRequest(email=taken, password=PASSWORD)
            )
        await stack.wait_for_message(taken)
        seen = []
        for address in (taken, f"new-{uuid.uuid4().hex[:8]}@example.com"):
            async with httpx.AsyncClient(base_url=base) as web:
                await web.get("/")
                csrf = web.cookies["csrf"]
                form = {"email": address, "password": PASSWORD, "csrf_token": csrf}
                registered = await web.post("/register", data=form)
                assert registered.status_code == 303
                page_url = registered.headers["location"]
                registration_id = page_url.rsplit("/", 1)[1]
                page = await web.get(page_url)
                status = await web.get(f"{page_url}/status.json")
                resent = await web.post(f"{page_url}/resend", data={"csrf_token": csrf})
                after = await web.get(resent.headers["location"])

                def neutral(text: str) -> str:
                    return text.replace(registration_id, "ID").replace(csrf, "CSRF")  # noqa: B023

                seen.append(
                    (
                        page.status_code,
                        neutral(page.text),
                        status.status_code,
                        status.text,
                        resent.status_code,
                        neutral(resent.headers["location"]),
                        neutral(after.text),
                    )
                )
        assert seen[0] == seen[1]
        assert "email" in seen[0][1] and "Check your inbox" in seen[0][1]
    finally:
        stack.devstack.stop("web-hidden")
        stack.devstack.stop("server-hidden-web")
