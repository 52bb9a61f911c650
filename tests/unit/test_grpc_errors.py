"""How application errors and records become gRPC statuses and messages."""

from __future__ import annotations

import inspect
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.rpc import error_details_pb2

from registration.domain import errors
from registration.domain.email_kinds import EmailKind
from registration.domain.errors import (
    AlreadyExists,
    DependencyUnavailable,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    RegistrationError,
    RegistrationExpired,
    TryLater,
)
from registration.domain.records import DeliveryRecord, RegistrationRecord
from registration.domain.statuses import DeliveryStatus, RegistrationStatus
from registration.entrypoints.grpc.messages import registration_message
from registration.entrypoints.grpc.status_codes import STATUS_FOR_ERROR, error_status
from registration.v1 import registration_pb2 as pb

T0 = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_invalid_argument_carries_one_bad_request_with_every_field_in_order() -> None:
    status = error_status(
        InvalidArgument(
            [
                FieldViolation("email", "An email address must have an @-sign."),
                FieldViolation("password", "must be at least 12 characters"),
            ]
        )
    )

    assert status.code == 3
    assert "email" in status.message
    assert "password" in status.message
    assert len(status.details) == 1
    assert status.details[0].Is(error_details_pb2.BadRequest.DESCRIPTOR)
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        ("email", "An email address must have an @-sign."),
        ("password", "must be at least 12 characters"),
    ]


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (AlreadyExists("taken"), 6),
        (NotFound("no such registration"), 5),
        (RegistrationExpired("expired"), 9),
        (DependencyUnavailable("database unavailable"), 14),
        (FailedPrecondition("the address is already verified"), 9),
    ],
)
def test_other_errors_map_to_their_code_without_details(
    error: RegistrationError, code: int
) -> None:
    status = error_status(error)
    assert status.code == code
    assert status.message == str(error)
    assert len(status.details) == 0


def test_a_cooldown_says_when_to_try_again() -> None:
    retry_at = datetime.now(UTC) + timedelta(seconds=40)
    status = error_status(TryLater("too early", reason="RESEND_COOLDOWN", retry_at=retry_at))

    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert status.message == "too early"
    retry = error_details_pb2.RetryInfo()
    info = error_details_pb2.ErrorInfo()
    assert [d.Unpack(retry) or d.Unpack(info) for d in status.details] == [True, True]
    assert 30 < retry.retry_delay.ToTimedelta().total_seconds() <= 40
    assert info.reason == "RESEND_COOLDOWN"
    assert datetime.fromisoformat(info.metadata["retry_at"]) == retry_at


def test_a_spent_limit_has_no_retry_time() -> None:
    status = error_status(TryLater("none left", reason="RESEND_LIMIT", retry_at=None))

    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert len(status.details) == 1
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert info.reason == "RESEND_LIMIT"
    assert "retry_at" not in info.metadata


def test_status_codes_agree_with_grpc() -> None:
    assert STATUS_FOR_ERROR[InvalidArgument] is grpc.StatusCode.INVALID_ARGUMENT
    assert STATUS_FOR_ERROR[RegistrationExpired] is grpc.StatusCode.FAILED_PRECONDITION
    assert STATUS_FOR_ERROR[DependencyUnavailable] is grpc.StatusCode.UNAVAILABLE


def test_every_registration_error_has_a_status_code() -> None:
    """A new error class without a mapping would reach the client as INTERNAL."""
    defined = {
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, RegistrationError)
        and cls is not RegistrationError
        and cls.__module__ == errors.__name__
    }
    assert defined, "no RegistrationError subclasses found"
    assert defined <= set(STATUS_FOR_ERROR)


# registration_message ----------------------------------------------------------------------


def _record(
    *, verified_at: datetime | None, deliveries: list[DeliveryRecord]
) -> RegistrationRecord:
    return RegistrationRecord(
        registration_id="key_0123456789abcdef",
        user_id=uuid.UUID("12345678-1234-5678-1234-567812345678"),
        email="ann@example.org",
        status=RegistrationStatus.ACTIVE
        if verified_at
        else RegistrationStatus.PENDING_VERIFICATION,
        created_at=T0,
        verified_at=verified_at,
        expires_at=T0 + timedelta(hours=24),
        deliveries=deliveries,
        # Kept as the workflow left them; only a pending registration shows them.
        next_resend_allowed_at=T0 + timedelta(minutes=1),
        resends_remaining=4,
    )


def test_registration_message_of_a_pending_registration() -> None:
    message = registration_message(
        _record(
            verified_at=None,
            deliveries=[
                DeliveryRecord(
                    delivery_id="d1",
                    kind=EmailKind.VERIFICATION,
                    status=DeliveryStatus.PENDING,
                    attempts=2,
                    last_error=None,
                    created_at=T0,
                    sent_at=None,
                    message_id="<d1@example.org>",
                )
            ],
        )
    )
    assert message.registration_id == "key_0123456789abcdef"
    assert message.user_id == "12345678-1234-5678-1234-567812345678"
    assert message.email == "ann@example.org"
    assert message.status == pb.REGISTRATION_STATUS_PENDING_VERIFICATION
    assert message.created_at.ToDatetime(tzinfo=UTC) == T0
    assert message.expires_at.ToDatetime(tzinfo=UTC) == T0 + timedelta(hours=24)
    assert not message.HasField("verified_at")
    [delivery] = message.deliveries
    assert delivery.kind == pb.EMAIL_KIND_VERIFICATION
    assert delivery.status == pb.DELIVERY_STATUS_PENDING
    assert delivery.attempts == 2
    assert delivery.last_error == ""
    assert not delivery.HasField("sent_at")
    assert delivery.created_at.ToDatetime(tzinfo=UTC) == T0
    assert delivery.message_id == "<d1@example.org>"
    assert message.next_resend_allowed_at.ToDatetime(tzinfo=UTC) == T0 + timedelta(minutes=1)
    assert message.resends_remaining == 4


def test_registration_message_of_an_active_registration() -> None:
    verified_at = T0 + timedelta(minutes=3)
    message = registration_message(
        _record(
            verified_at=verified_at,
            deliveries=[
                DeliveryRecord(
                    delivery_id="d1",
                    kind=EmailKind.VERIFICATION,
                    status=DeliveryStatus.SENT,
                    attempts=1,
                    last_error=None,
                    created_at=T0,
                    sent_at=T0 + timedelta(seconds=1),
                ),
                DeliveryRecord(
                    delivery_id="d2",
                    kind=EmailKind.WELCOME,
                    status=DeliveryStatus.FAILED,
                    attempts=7,
                    last_error="SMTPServerDisconnected: gone",
                    created_at=verified_at,
                    sent_at=None,
                ),
            ],
        )
    )
    assert message.status == pb.REGISTRATION_STATUS_ACTIVE
    assert message.verified_at.ToDatetime(tzinfo=UTC) == verified_at
    assert not message.HasField("next_resend_allowed_at")
    assert message.resends_remaining == 0
    assert [(d.kind, d.status) for d in message.deliveries] == [
        (pb.EMAIL_KIND_VERIFICATION, pb.DELIVERY_STATUS_SENT),
        (pb.EMAIL_KIND_WELCOME, pb.DELIVERY_STATUS_FAILED),
    ]
    assert message.deliveries[0].sent_at.ToDatetime(tzinfo=UTC) == T0 + timedelta(seconds=1)
    assert message.deliveries[1].last_error == "SMTPServerDisconnected: gone"
