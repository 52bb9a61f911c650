"""Bad input gets its documented status code, names the field at fault, and changes nothing."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from registration.v1 import registration_pb2 as pb
from registration.v1 import registration_pb2_grpc as pb_grpc
from tests.databases import BACKENDS as DATABASE_BACKENDS
from tests.integration.harness import Stack

# The repository and end-to-end path runs on both databases.
BACKENDS = DATABASE_BACKENDS

PASSWORD = "correct horse battery staple"
UNKNOWN_TOKEN = "a" * 52
UNKNOWN_REGISTRATION = "a" * 26 + "_" + "0" * 16


def bad_request_fields(err: grpc.aio.AioRpcError) -> list[str]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, "no rich status attached"
    fields = []
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        assert detail.Unpack(bad), f"unexpected detail {detail.type_url}"
        fields += [v.field for v in bad.field_violations]
    return fields


CASES = [
    ("RegisterUser", pb.RegisterUserRequest(email="not-an-email", password=PASSWORD),
     grpc.StatusCode.INVALID_ARGUMENT, ["email"]),
    ("RegisterUser", pb.RegisterUserRequest(email="", password=PASSWORD),
     grpc.StatusCode.INVALID_ARGUMENT, ["email"]),
    ("RegisterUser", pb.RegisterUserRequest(email="x@" + "a" * 250 + ".com", password=PASSWORD),
     grpc.StatusCode.INVALID_ARGUMENT, ["email"]),
    ("RegisterUser", pb.RegisterUserRequest(email="short@example.com", password="short"),
     grpc.StatusCode.INVALID_ARGUMENT, ["password"]),
    ("RegisterUser", pb.RegisterUserRequest(email="long@example.com", password="x" * 1025),
     grpc.StatusCode.INVALID_ARGUMENT, ["password"]),
    ("RegisterUser", pb.RegisterUserRequest(email="same@example.com", password="same@example.com"),
     grpc.StatusCode.INVALID_ARGUMENT, ["password"]),
    ("RegisterUser", pb.RegisterUserRequest(email="nul@example.com", password="\x00" * 16),
     grpc.StatusCode.INVALID_ARGUMENT, ["password"]),
    ("RegisterUser", pb.RegisterUserRequest(email="esc@example.com",
                                            password="\x1b\x07\x08\x7f" * 4),
     grpc.StatusCode.INVALID_ARGUMENT, ["password"]),
    ("RegisterUser", pb.RegisterUserRequest(email="run@example.com", password="123456789012345"),
     grpc.StatusCode.INVALID_ARGUMENT, ["password"]),
    ("RegisterUser", pb.RegisterUserRequest(email="twice@example.com",
                                            password="passwordpassword"),
     grpc.StatusCode.INVALID_ARGUMENT, ["password"]),
    ("RegisterUser", pb.RegisterUserRequest(email="leaked@example.com",
                                            password="000webhostilm10"),
     grpc.StatusCode.INVALID_ARGUMENT, ["password"]),
    ("RegisterUser", pb.RegisterUserRequest(email="@", password=""),
     grpc.StatusCode.INVALID_ARGUMENT, ["email", "password"]),
    ("VerifyEmail", pb.VerifyEmailRequest(token=""),
     grpc.StatusCode.INVALID_ARGUMENT, ["token"]),
    ("VerifyEmail", pb.VerifyEmailRequest(token="../../etc/passwd"),
     grpc.StatusCode.INVALID_ARGUMENT, ["token"]),
    ("VerifyEmail", pb.VerifyEmailRequest(token=UNKNOWN_TOKEN),
     grpc.StatusCode.NOT_FOUND, []),
    ("GetRegistration", pb.GetRegistrationRequest(registration_id="nope"),
     grpc.StatusCode.INVALID_ARGUMENT, ["registration_id"]),
    ("GetRegistration", pb.GetRegistrationRequest(registration_id=UNKNOWN_REGISTRATION),
     grpc.StatusCode.NOT_FOUND, []),
    ("ResendVerificationEmail", pb.ResendVerificationEmailRequest(registration_id=""),
     grpc.StatusCode.INVALID_ARGUMENT, ["registration_id"]),
    ("ResendVerificationEmail",
     pb.ResendVerificationEmailRequest(registration_id=UNKNOWN_REGISTRATION),
     grpc.StatusCode.NOT_FOUND, []),
]  # fmt: skip


@pytest.mark.parametrize(("method", "request_message", "code", "fields"), CASES)
async def test_bad_input_is_rejected_with_its_status_and_writes_nothing(
    stack: Stack,
    stub: pb_grpc.RegistrationServiceStub,
    method: str,
    request_message: object,
    code: grpc.StatusCode,
    fields: list[str],
) -> None:
    rows_before = stack.row_counts()
    mail_before = len(list(stack.mail_dir.glob("*.eml")))

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await getattr(stub, method)(request_message)

    assert caught.value.code() is code
    assert caught.value.details()
    if fields:
        assert bad_request_fields(caught.value) == fields
    assert stack.row_counts() == rows_before
    assert len(list(stack.mail_dir.glob("*.eml"))) == mail_before


async def test_email_with_a_pending_registration_is_already_exists(
    stack: Stack, stub: pb_grpc.RegistrationServiceStub
) -> None:
    address = f"twice-{uuid.uuid4().hex[:8]}@example.com"
    await stub.RegisterUser(pb.RegisterUserRequest(email=address, password=PASSWORD))
    await stack.wait_for_message(address)

    # Another spelling of the same address is the same address.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.RegisterUser(pb.RegisterUserRequest(email=address.upper(), password=PASSWORD))
    assert caught.value.code() is grpc.StatusCode.ALREADY_EXISTS
    assert len(stack.users(address)) == 1


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"\x0a\x02\xff\xfe", grpc.StatusCode.INVALID_ARGUMENT),  # email with bad UTF-8
        (b"\x0a\x80\x80\x80", grpc.StatusCode.INVALID_ARGUMENT),  # truncated wire format
        (
            b"\x0a\x90\x4e" + b"a" * 10_000 + b"\x12\x01a" * 3_000,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        ),
    ],
    ids=["bad-utf8", "corrupt", "oversized"],
)
async def test_undecodable_request_bytes_get_a_clear_status(
    stack: Stack, channel: grpc.aio.Channel, raw: bytes, code: grpc.StatusCode
) -> None:
    rows_before = stack.row_counts()
    call = channel.unary_unary("/registration.v1.RegistrationService/RegisterUser")

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(raw)

    assert caught.value.code() is code
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        assert bad_request_fields(caught.value) == ["request"]
    assert stack.row_counts() == rows_before
