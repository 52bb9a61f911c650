"""Concurrent RegisterUser calls for one email create exactly one user and one workflow."""

from __future__ import annotations

import asyncio
import uuid

import grpc

from registration.domain.identifiers import workflow_id_for_registration
from registration.v1 import registration_pb2 as pb
from registration.v1 import registration_pb2_grpc as pb_grpc
from tests.databases import BACKENDS as DATABASE_BACKENDS
from tests.integration.harness import Stack

# The repository and end-to-end path runs on both databases.
BACKENDS = DATABASE_BACKENDS

CALLS = 20


async def test_twenty_concurrent_registrations_for_one_email(
    stack: Stack, stub: pb_grpc.RegistrationServiceStub
) -> None:
    address = f"race-{uuid.uuid4().hex[:8]}@example.com"
    request = pb.RegisterUserRequest(email=address, password="correct horse battery staple")

    results = await asyncio.gather(
        *(stub.RegisterUser(request) for _ in range(CALLS)), return_exceptions=True
    )

    winners = [r for r in results if isinstance(r, pb.RegisterUserResponse)]
    losers = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(winners) == 1, results
    assert [e.code() for e in losers] == [grpc.StatusCode.ALREADY_EXISTS] * (CALLS - 1)

    await stack.wait_for_message(address)
    [user] = stack.users(address)
    assert user.registration_id == winners[0].registration_id

    client = await stack.temporal_client()
    workflow_id = workflow_id_for_registration(winners[0].registration_id)
    runs = [w async for w in client.list_workflows(f'WorkflowId = "{workflow_id}"')]
    assert len(runs) == 1
    assert len(stack.messages_to(address)) == 1
