"""Protobuf ↔ domain: the API's messages, enums and timestamps from the services' records and
back. The servicer uses nothing else to speak protobuf."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import timestamp_pb2
from google.protobuf.message import Message

from registration.domain.email_kinds import EmailKind
from registration.domain.errors import FieldViolation, InvalidArgument
from registration.domain.records import (
    DeliveryRecord,
    NotificationRecord,
    RegistrationProgress,
    RegistrationRecord,
)
from registration.domain.statuses import DeliveryProblem, DeliveryStatus, RegistrationStatus
from registration.v1 import registration_pb2 as pb

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RegistrationService"].full_name

REGISTRATION_STATUS = {
    RegistrationStatus.PENDING_VERIFICATION: pb.REGISTRATION_STATUS_PENDING_VERIFICATION,
    RegistrationStatus.ACTIVE: pb.REGISTRATION_STATUS_ACTIVE,
    RegistrationStatus.EXPIRED: pb.REGISTRATION_STATUS_EXPIRED,
}
DELIVERY_STATUS = {
    DeliveryStatus.PENDING: pb.DELIVERY_STATUS_PENDING,
    DeliveryStatus.SENT: pb.DELIVERY_STATUS_SENT,
    DeliveryStatus.FAILED: pb.DELIVERY_STATUS_FAILED,
}
DELIVERY_PROBLEM = {
    DeliveryProblem.ADDRESS_REFUSED: pb.DELIVERY_PROBLEM_ADDRESS_REFUSED,
    DeliveryProblem.PREPARING: pb.DELIVERY_PROBLEM_PREPARING,
    DeliveryProblem.REPLACED: pb.DELIVERY_PROBLEM_REPLACED,
    DeliveryProblem.SERVER_UNREACHABLE: pb.DELIVERY_PROBLEM_SERVER_UNREACHABLE,
}
EMAIL_KIND = {
    EmailKind.VERIFICATION: pb.EMAIL_KIND_VERIFICATION,
    EmailKind.REMINDER: pb.EMAIL_KIND_REMINDER,
    EmailKind.WELCOME: pb.EMAIL_KIND_WELCOME,
    EmailKind.REGISTRATION_ATTEMPT: pb.EMAIL_KIND_REGISTRATION_ATTEMPT,
    EmailKind.PASSWORD_RESET: pb.EMAIL_KIND_PASSWORD_RESET,
    EmailKind.PASSWORD_CHANGED: pb.EMAIL_KIND_PASSWORD_CHANGED,
    EmailKind.ENROLLMENT: pb.EMAIL_KIND_ENROLLMENT,
}


def delivery_message(delivery: DeliveryRecord) -> pb.EmailDelivery:
    return pb.EmailDelivery(
        kind=EMAIL_KIND[delivery.kind],
        status=DELIVERY_STATUS[delivery.status],
        attempts=delivery.attempts,
        last_error=delivery.last_error or "",
        sent_at=timestamp(delivery.sent_at),
        created_at=timestamp(delivery.created_at),
        message_id=delivery.message_id or "",
    )


def notification_message(record: NotificationRecord) -> pb.Notification:
    return pb.Notification(
        notification_id=record.notification_id,
        kind=EMAIL_KIND[record.kind],
        order_id=record.order_id,
        recipient=record.recipient,
        created_at=timestamp(record.created_at),
        delivery=delivery_message(record.deliveries[0]) if record.deliveries else None,
    )


def registration_message(record: RegistrationRecord) -> pb.Registration:
    pending = record.status is RegistrationStatus.PENDING_VERIFICATION
    return pb.Registration(
        registration_id=record.registration_id,
        user_id=str(record.user_id),
        email=record.email,
        status=REGISTRATION_STATUS[record.status],
        created_at=timestamp(record.created_at),
        verified_at=timestamp(record.verified_at),
        expires_at=timestamp(record.expires_at),
        deliveries=[delivery_message(d) for d in record.deliveries],
        next_resend_allowed_at=timestamp(record.next_resend_allowed_at if pending else None),
        resends_remaining=record.resends_remaining if pending else 0,
    )


def registration_status_message(
    progress: RegistrationProgress,
) -> pb.GetRegistrationStatusResponse:
    email, problem = progress.verification_email, progress.verification_email_problem
    return pb.GetRegistrationStatusResponse(
        status=REGISTRATION_STATUS[progress.status],
        verification_email=DELIVERY_STATUS[email] if email else None,
        verification_email_problem=DELIVERY_PROBLEM[problem] if problem else None,
        next_resend_allowed_at=timestamp(progress.next_resend_allowed_at),
        resends_remaining=progress.resends_remaining,
    )


def optional_datetime(message: Message, field: str) -> datetime | None:
    """A Timestamp field as an aware datetime; one outside what a datetime can hold (a client
    may send any seconds) is the client's mistake."""
    if not message.HasField(field):
        return None
    stamp: timestamp_pb2.Timestamp = getattr(message, field)
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as err:
        raise InvalidArgument([FieldViolation(field, f"is not a valid time: {err}")]) from err


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp
