"""Temporal is not a trust boundary: whoever can reach the Temporal server (its CLI, its web
UI's HTTP API, a client of their own) without the payload keys changes nothing — a forged
start or update is refused, a payload lifted from one workflow into another is refused, and
no signal verifies an address.

Each attack is made the way an attacker would make it: a Temporal client of their own with
no keys, against the real stack (dev server, worker, gRPC server, SMTP sink)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import timedelta

import grpc
import pytest
from argon2 import PasswordHasher
from sqlmodel import Session
from temporalio.api.common.v1 import Payloads, WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.update.v1 import Input, Meta, Request, WaitPolicy
from temporalio.api.workflowservice.v1 import UpdateWorkflowExecutionRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.converter import WorkflowSerializationContext
from temporalio.exceptions import FailureError
from temporalio.service import RPCError

from registration.adapters.db.tables import PasswordReset
from registration.domain.clock import utcnow
from registration.domain.identifiers import (
    email_key,
    new_reset_id,
    password_reset_workflow_id,
    workflow_id_for_registration,
)
from registration.v1 import registration_pb2 as pb
from registration.v1 import registration_pb2_grpc as pb_grpc
from tests.integration.harness import Stack, token_of
from workflows.contracts import (
    EmailRetrySettings,
    PasswordResetInput,
    ResendPolicy,
    ResetPasswordRequest,
)

PASSWORD = "correct horse battery staple"
ATTACKER_PASSWORD = "the attacker's own passphrase"


def new_address(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}@example.com"


async def attacker_client(stack: Stack) -> Client:
    """A client of the Temporal server with the SDK's default converter: no payload keys."""
    settings = stack.settings
    return await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)


async def active_account(stack: Stack, stub: pb_grpc.RegistrationServiceStub, address: str) -> str:
    registered = await stub.RegisterUser(pb.RegisterUserRequest(email=address, password=PASSWORD))
    [message] = await stack.wait_for_message(address)
    await stub.VerifyEmail(pb.VerifyEmailRequest(token=token_of(message)))
    await stack.wait_for_message(address, count=2)  # the welcome
    return str(registered.registration_id)


async def signs_in(stub: pb_grpc.RegistrationServiceStub, address: str, password: str) -> bool:
    try:
        await stub.Authenticate(pb.AuthenticateRequest(email=address, password=password))
    except grpc.aio.AioRpcError as err:
        assert err.code() is grpc.StatusCode.UNAUTHENTICATED, err
        return False
    return True


async def event_types(handle: WorkflowHandle[object, object]) -> list[EventType.ValueType]:
    return [event.event_type async for event in handle.fetch_history_events()]


async def wait_for_event(
    handle: WorkflowHandle[object, object], event_type: EventType.ValueType, within: float = 30
) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while event_type not in await event_types(handle):
        assert asyncio.get_running_loop().time() < deadline, f"no {event_type} in the history"
        await asyncio.sleep(0.2)


async def test_a_forged_plaintext_reset_changes_no_password_and_sends_nothing(
    stack: Stack, stub: pb_grpc.RegistrationServiceStub
) -> None:
    victim = new_address("victim")
    await active_account(stack, stub, victim)
    emails_before = len(stack.messages_to(victim))
    attacker = await attacker_client(stack)
    # The workflow ID is no secret: the web UI lists it.
    key = email_key(stack.settings.resolved_secret_key(), victim)
    forged = PasswordResetInput(
        reset_id=new_reset_id(key),
        email=victim,
        email_key=key,
        requested_at=utcnow(),
        expires_at=utcnow() + timedelta(hours=1),
        email_retry=EmailRetrySettings(1, 2, 10, 60),
        resend=ResendPolicy(),
        # So that the owner would never hear of it.
        email_task_queue="a-queue-no-worker-polls",
    )
    handle: WorkflowHandle[object, object] = await attacker.start_workflow(
        "PasswordResetWorkflow",
        forged,
        id=password_reset_workflow_id(key),
        task_queue=stack.settings.temporal_task_queue,
        start_signal="requested",
    )
    try:
        attacker_hash = PasswordHasher().hash(ATTACKER_PASSWORD)
        with pytest.raises(Exception):  # noqa: B017 (refused or never answered: either will do)
            async with asyncio.timeout(10):
                await handle.execute_update(
                    "reset_password",
                    ResetPasswordRequest(reset_id=forged.reset_id, password_hash=attacker_hash),
                )
        # The worker refused the forged input: its workflow task failed.
        await wait_for_event(handle, EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)
        assert await signs_in(stub, victim, PASSWORD)
        assert not await signs_in(stub, victim, ATTACKER_PASSWORD)
        with Session(stack.engine) as session:
            assert session.get(PasswordReset, forged.reset_id) is None
        assert len(stack.messages_to(victim)) == emails_before
    finally:
        with contextlib.suppress(RPCError):  # closed already, if today's code let it finish
            await handle.terminate(reason="test: the forged reset ends here")


async def test_a_verify_signal_from_anyone_with_temporal_access_verifies_nothing(
    stack: Stack, stub: pb_grpc.RegistrationServiceStub
) -> None:
    address = new_address("unverified")
    registered = await stub.RegisterUser(pb.RegisterUserRequest(email=address, password=PASSWORD))
    await stack.wait_for_message(address)
    attacker = await attacker_client(stack)
    handle: WorkflowHandle[object, object] = attacker.get_workflow_handle(
        workflow_id_for_registration(registered.registration_id)
    )

    await handle.signal("verify")
    # The worker has seen the signal once a workflow task completed after it.
    await wait_for_event(handle, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
    history = await event_types(handle)
    signaled = history.index(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
    deadline = asyncio.get_running_loop().time() + 30
    while EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED not in history[signaled:]:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.2)
        history = await event_types(handle)
    await asyncio.sleep(1)  # an activation would have run by now

    reply = await stub.GetRegistration(
        pb.GetRegistrationRequest(registration_id=registered.registration_id)
    )
    assert reply.registration.status == pb.REGISTRATION_STATUS_PENDING_VERIFICATION
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Authenticate(pb.AuthenticateRequest(email=address, password=PASSWORD))
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION


async def test_an_update_payload_lifted_into_another_workflow_is_refused(
    stack: Stack, stub: pb_grpc.RegistrationServiceStub
) -> None:
    victim, attacker_address = new_address("victim"), new_address("attacker")
    for address in (victim, attacker_address):
        await active_account(stack, stub, address)
        await stub.RequestPasswordReset(pb.RequestPasswordResetRequest(email=address))
    [*_, reset_link] = await stack.wait_for_message(attacker_address, count=3)
    # The attacker resets their own password: their workflow's history now holds the update's
    # payload, encrypted, with their own new password's hash inside.
    await stub.ResetPassword(
        pb.ResetPasswordRequest(token=token_of(reset_link), new_password=ATTACKER_PASSWORD)
    )
    secret = stack.settings.resolved_secret_key()
    attacker = await attacker_client(stack)
    own = attacker.get_workflow_handle(
        password_reset_workflow_id(email_key(secret, attacker_address))
    )
    [accepted] = [
        event.workflow_execution_update_accepted_event_attributes
        async for event in own.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]
    lifted = accepted.accepted_request.input.args

    # Sent as it is, with the raw API (no converter could make it), to the victim's reset.
    target = password_reset_workflow_id(email_key(secret, victim))
    response = await attacker.workflow_service.update_workflow_execution(
        UpdateWorkflowExecutionRequest(
            namespace=attacker.namespace,
            workflow_execution=WorkflowExecution(workflow_id=target),
            request=Request(
                meta=Meta(update_id=str(uuid.uuid4()), identity="attacker"),
                input=Input(name="reset_password", args=Payloads(payloads=lifted.payloads)),
            ),
            wait_policy=WaitPolicy(
                lifecycle_stage=3  # UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED
            ),
        )
    )
    failure = response.outcome.failure
    assert failure.message, response
    # What the attacker sees of the reason is ciphertext; the operator reads it with the keys.
    ours = await stack.temporal_client()
    refusal = await ours.data_converter.with_context(
        WorkflowSerializationContext(namespace=ours.namespace, workflow_id=target)
    ).decode_failure(failure)
    reasons = []
    while refusal is not None:
        reasons.append(str(refusal))
        refusal = refusal.cause if isinstance(refusal, FailureError) else None
    # Refused as a payload of another workflow, not weighed by the workflow's own rules.
    assert any("belongs to another workflow" in reason for reason in reasons), reasons
    assert await signs_in(stub, victim, PASSWORD)
    assert not await signs_in(stub, victim, ATTACKER_PASSWORD)
