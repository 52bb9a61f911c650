"""Property-based: arbitrary Unicode, control characters, very long and empty strings in every
field of every RPC get only documented status codes, and rejected calls change nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import timestamp_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registration.entrypoints.grpc.client import open_sync_channel
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
    "GetRegistrationStatus": {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    },
    "ConfirmRegistration": {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    },
    "ResendVerificationEmail": {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    },
    "Authenticate": {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    },
    "RequestPasswordReset": {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    },
    "ResetPassword": {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    },
    "NotifyEnrollment": {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    },
    "GetNotification": {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    },
}
NAME = st.one_of(FIELD, st.text(min_size=1, max_size=40))
# Any seconds and nanos a client can put in a Timestamp, valid or not, or none at all.
TIMESTAMP = st.one_of(
    st.none(),
    st.builds(
        timestamp_pb2.Timestamp,
        seconds=st.integers(-(2**63), 2**63 - 1),
        nanos=st.integers(-(2**31), 2**31 - 1),
    ),
    st.builds(timestamp_pb2.Timestamp, seconds=st.integers(0, 4_000_000_000)),
)

CALLS = st.one_of(
    st.builds(lambda e, p: ("RegisterUser", pb.RegisterUserRequest(email=e, password=p)),
              EMAIL, PASSWORD),
    st.builds(lambda t: ("VerifyEmail", pb.VerifyEmailRequest(token=t)), FIELD),
    st.builds(lambda r: ("GetRegistration", pb.GetRegistrationRequest(registration_id=r)), FIELD),
    st.builds(lambda r: ("GetRegistrationStatus",
                         pb.GetRegistrationStatusRequest(registration_id=r)), FIELD),
    st.builds(lambda r: ("ConfirmRegistration",
                         pb.ConfirmRegistrationRequest(registration_id=r)), FIELD),
    st.builds(lambda r: ("ResendVerificationEmail",
                         pb.ResendVerificationEmailRequest(registration_id=r)), FIELD),
    st.builds(lambda e, p: ("Authenticate", pb.AuthenticateRequest(email=e, password=p)),
              EMAIL, PASSWORD),
    st.builds(lambda e: ("RequestPasswordReset", pb.RequestPasswordResetRequest(email=e)),
              EMAIL),
    st.builds(lambda t, p: ("ResetPassword",
                            pb.ResetPasswordRequest(token=t, new_password=p)), FIELD, PASSWORD),
    st.builds(lambda o, oe, on, en, ee, off, at: ("NotifyEnrollment",
                                                 pb.NotifyEnrollmentRequest(
                                                     order_id=o, organizer_email=oe,
                                                     organizer_name=on, enrollee_name=en,
                                                     enrollee_email=ee, offering_name=off,
                                                     enrolled_at=at)),
              NAME, EMAIL, NAME, NAME, st.one_of(st.just(""), EMAIL), NAME, TIMESTAMP),
    st.builds(lambda n: ("GetNotification", pb.GetNotificationRequest(notification_id=n)),
              FIELD),
)  # fmt: skip


def test_every_rpc_is_fuzzed() -> None:
    service = pb.DESCRIPTOR.services_by_name["RegistrationService"]
    assert set(DOCUMENTED) == {method.name for method in service.methods}


def call(
    stub: pb_grpc.RegistrationServiceStub, method: str, request: object
) -> tuple[object, object]:
    try:
        return grpc.StatusCode.OK, getattr(stub, method)(request, timeout=30)
    except grpc.RpcError as err:
        return err.code(), None  # type: ignore[attr-defined]


def settle(stub: pb_grpc.RegistrationServiceStub, reply: object) -> None:
    """Wait until what an accepted call started has written what it writes at first (the
    user, or the notification, with its email's delivery), so that it cannot be taken for a
    rejected call's doing."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if isinstance(reply, pb.RegisterUserResponse):
            got = stub.GetRegistration(
                pb.GetRegistrationRequest(registration_id=reply.registration_id)
            )
            deliveries = list(got.registration.deliveries)
        else:
            assert isinstance(reply, pb.NotifyEnrollmentResponse)
            shown = stub.GetNotification(
                pb.GetNotificationRequest(notification_id=reply.notification_id)
            )
            deliveries = [shown.notification.delivery]
        if deliveries and deliveries[0].status != pb.DELIVERY_STATUS_PENDING:
            return
        time.sleep(0.05)
    raise AssertionError(f"{reply} never settled")


async def count_registration_workflows(stack: Stack) -> int:
    client = await stack.temporal_client()
    return (await client.count_workflows("WorkflowType = 'RegistrationWorkflow'")).count


def registration_workflows(stack: Stack) -> int:
    return asyncio.run(count_registration_workflows(stack))


@pytest.fixture(scope="module")
def blocking_stub(stack: Stack) -> Iterator[pb_grpc.RegistrationServiceStub]:
    with open_sync_channel(stack.settings) as channel:
        yield pb_grpc.RegistrationServiceStub(channel)


@pytest.fixture(scope="module")
def accepted(stack: Stack) -> Iterator[list[str]]:
    """Collects the accepted calls; afterwards Temporal must hold exactly that many new
    registration workflows."""
    before = registration_workflows(stack)
    calls: list[str] = []
    yield calls
    expected = before + calls.count("RegisterUser")
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
    if isinstance(reply, pb.RegisterUserResponse | pb.NotifyEnrollmentResponse):
        accepted.append(method)
        settle(blocking_stub, reply)
    else:
        # Rejected calls, and the calls that write nothing of their own (a reset request
        # for an address with no account, a sign-in's failure count aside).
        assert stack.row_counts() == rows_before, f"{method} answered {code} and wrote rows"
