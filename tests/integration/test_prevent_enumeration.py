"""PREVENT_ENUMERATION: a taken address gets the answer a new one gets, and its owner an email
telling that someone tried; repeated attempts within the cooldown send nothing more."""

from __future__ import annotations

import asyncio
import uuid

import grpc
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

            # Invalid input is still named precisely: it reveals nothing about accounts.
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await stub.RegisterUser(pb.RegisterUserRequest(email=address, password="short"))
            assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    finally:
        stack.devstack.stop("server-hidden")
