"""Property-based: arbitrary Unicode, control characters, very long and empty strings in every
field of every RPC get only documented status codes, and rejected calls change nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registration.v1 import registration_pb2 as pb
from registration.v1 import registration_pb2_grpc as pb_grpc
from tests.integration.harness import Stack

# Every string protobuf can carry: any code point but the surrogates (not UTF-8).
ANY_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=300)
CONTROL = st.text(st.characters(codec="ascii", categories=("Cc",)), max_size=20)
HUGE = st.text(st.characters(exclude_categories=("Cs",)), min_size=4000, max_size=6000)
FIELD = st.one_of(ANY_TEXT, CONTROL, HUGE, st.just(""))
EMAIL = st.one_of(FIELD, st.emails(), st.emails().map(lambda e: f"  {e.upper()}\x00"))
PASSWORD = st.one_of(FIELD, st.text(min_size=12, max_size=80))

# What each RPC may answer to arbitrary input (see the proto's error model).
DOCUMENTED = {
    "RegisterUser": {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    },
    "VerifyEmail": {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    },
    "GetRegistration": {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    },
}

CALLS = st.one_of(
    st.builds(lambda e, p: ("RegisterUser", pb.RegisterUserRequest(email=e, password=p)),
              EMAIL, PASSWORD),
    st.builds(lambda t: ("VerifyEmail", pb.VerifyEmailRequest(token=t)), FIELD),
    st.builds(lambda r: ("GetRegistration", pb.GetRegistrationRequest(registration_id=r)), FIELD),
)  # fmt: skip


def call(
    stub: pb_grpc.RegistrationServiceStub, method: str, request: object
) -> tuple[object, object]:
    try:
        return grpc.StatusCode.OK, getattr(stub, method)(request, timeout=30)
    except grpc.RpcError as err:
        return err.code(), None  # type: ignore[attr-defined]


def settle(stub: pb_grpc.RegistrationServiceStub, registration_id: str) -> None:
    """Wait until an accepted registration's worker has written what it writes at first (the
    user, the verification delivery), so that it cannot be taken for a rejected call's doing."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        reply = stub.GetRegistration(pb.GetRegistrationRequest(registration_id=registration_id))
        deliveries = reply.registration.deliveries
        if deliveries and deliveries[0].status != pb.DELIVERY_STATUS_PENDING:
            return
        time.sleep(0.05)
    raise AssertionError(f"registration {registration_id} never settled")


async def count_registration_workflows(stack: Stack) -> int:
    client = await stack.temporal_client()
    return (await client.count_workflows("WorkflowType = 'RegistrationWorkflow'")).count


def registration_workflows(stack: Stack) -> int:
    return asyncio.run(count_registration_workflows(stack))


@pytest.fixture(scope="module")
def blocking_stub(stack: Stack) -> Iterator[pb_grpc.RegistrationServiceStub]:
    with grpc.insecure_channel(stack.grpc_address) as channel:
        yield pb_grpc.RegistrationServiceStub(channel)


@pytest.fixture(scope="module")
def accepted(stack: Stack) -> Iterator[list[str]]:
    """Collects the accepted calls; afterwards Temporal must hold exactly that many new
    registration workflows."""
    before = registration_workflows(stack)
    calls: list[str] = []
    yield calls
    expected = before + len(calls)
    deadline = time.monotonic() + 10
    while registration_workflows(stack) < expected and time.monotonic() < deadline:
        time.sleep(0.1)
    assert registration_workflows(stack) == expected


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(method_and_request=CALLS)
def test_arbitrary_input_gets_only_documented_codes(
    stack: Stack,
    blocking_stub: pb_grpc.RegistrationServiceStub,
    accepted: list[str],
    method_and_request: tuple[str, object],
) -> None:
    method, request = method_and_request
    rows_before = stack.row_counts()
    code, reply = call(blocking_stub, method, request)
    assert code in DOCUMENTED[method], f"{method} answered {code} to {request!r:.200}"
    if isinstance(reply, pb.RegisterUserResponse):
        accepted.append(method)
        settle(blocking_stub, reply.registration_id)
    else:
        assert stack.row_counts() == rows_before, f"rejected {method} wrote rows"
