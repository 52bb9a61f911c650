"""The gRPC face of the service: translates protobuf to the application layer and back.

It never touches SQL or SMTP. One table maps application errors to status codes; invalid
arguments carry a google.rpc.BadRequest naming each field at fault.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import grpc
from google.protobuf import timestamp_pb2
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status

from registration.application import Services
from registration.db import utcnow
from registration.errors import (
    AlreadyExists,
    DependencyUnavailable,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    RegistrationError,
    RegistrationExpired,
    TryLater,
    Unauthenticated,
)
from registration.notification_repository import NotificationRecord
from registration.notification_service import EnrollmentRequest
from registration.repository import DeliveryRecord, RegistrationRecord
from registration.status import DeliveryStatus, EmailKind, RegistrationStatus
from registration.v1 import registration_pb2 as pb
from registration.v1 import registration_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RegistrationService"].full_name
# Requests of this API are an email, a password or a token: a few KiB is generous.
MAX_REQUEST_BYTES = 16 * 1024

STATUS_FOR_ERROR: dict[type, grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    NotFound: grpc.StatusCode.NOT_FOUND,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    RegistrationExpired: grpc.StatusCode.FAILED_PRECONDITION,
    TryLater: grpc.StatusCode.RESOURCE_EXHAUSTED,
    DependencyUnavailable: grpc.StatusCode.UNAVAILABLE,
}

_REGISTRATION_STATUS = {
    RegistrationStatus.PENDING_VERIFICATION: pb.REGISTRATION_STATUS_PENDING_VERIFICATION,
    RegistrationStatus.ACTIVE: pb.REGISTRATION_STATUS_ACTIVE,
    RegistrationStatus.EXPIRED: pb.REGISTRATION_STATUS_EXPIRED,
}
_DELIVERY_STATUS = {
    DeliveryStatus.PENDING: pb.DELIVERY_STATUS_PENDING,
    DeliveryStatus.SENT: pb.DELIVERY_STATUS_SENT,
    DeliveryStatus.FAILED: pb.DELIVERY_STATUS_FAILED,
}
_EMAIL_KIND = {
    EmailKind.VERIFICATION: pb.EMAIL_KIND_VERIFICATION,
    EmailKind.REMINDER: pb.EMAIL_KIND_REMINDER,
    EmailKind.WELCOME: pb.EMAIL_KIND_WELCOME,
    EmailKind.REGISTRATION_ATTEMPT: pb.EMAIL_KIND_REGISTRATION_ATTEMPT,
    EmailKind.PASSWORD_RESET: pb.EMAIL_KIND_PASSWORD_RESET,
    EmailKind.PASSWORD_CHANGED: pb.EMAIL_KIND_PASSWORD_CHANGED,
    EmailKind.ENROLLMENT: pb.EMAIL_KIND_ENROLLMENT,
}

Response = TypeVar("Response")


@dataclass(frozen=True)
class MalformedRequest:
    """Stands in for request bytes that do not decode as the method's message type."""

    message_type: str
    reason: str


def _tolerant_deserializer(message_class: type[Message]) -> Callable[[bytes], object]:
    # grpcio answers a deserializer's exception with UNKNOWN; bytes the client got wrong
    # deserve INVALID_ARGUMENT, so the servicer receives a marker and answers that.
    def deserialize(data: bytes) -> object:
        try:
            return message_class.FromString(data)
        except DecodeError as err:
            return MalformedRequest(message_class.DESCRIPTOR.full_name, str(err))

    return deserialize


def _add_servicer(servicer: RegistrationServicer, server: grpc.aio.Server) -> None:
    """Like the generated add_RegistrationServiceServicer_to_server, with tolerant decoding."""
    service = pb.DESCRIPTOR.services_by_name["RegistrationService"]
    handlers = {
        method.name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, method.name),
            request_deserializer=_tolerant_deserializer(GetMessageClass(method.input_type)),
            response_serializer=GetMessageClass(method.output_type).SerializeToString,
        )
        for method in service.methods
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)


Request = TypeVar("Request")


def _rpc(
    method: Callable[[RegistrationServicer, Request], Awaitable[Response]],
) -> Callable[
    [RegistrationServicer, Request, grpc.aio.ServicerContext[Request, Response]],
    Awaitable[Response],
]:
    """A gRPC method from `method`, which turns a request into its response: `_answer` runs
    it and turns every failure into exactly one documented status."""

    @functools.wraps(method)
    async def handler(
        self: RegistrationServicer,
        request: Request,
        context: grpc.aio.ServicerContext[Request, Response],
    ) -> Response:
        return await _answer(context, request, lambda: method(self, request))

    return handler


class RegistrationServicer(pb_grpc.RegistrationServiceServicer):
    def __init__(self, services: Services) -> None:
        self._services = services

    @_rpc
    async def RegisterUser(self, request: pb.RegisterUserRequest) -> pb.RegisterUserResponse:
        result = await self._services.registration.register(
            email=request.email, password=request.password
        )
        return pb.RegisterUserResponse(
            registration_id=result.registration_id,
            status=_REGISTRATION_STATUS[result.status],
            expires_at=_timestamp(result.expires_at),
        )

    @_rpc
    async def VerifyEmail(self, request: pb.VerifyEmailRequest) -> pb.VerifyEmailResponse:
        result = await self._services.registration.verify(token=request.token)
        return pb.VerifyEmailResponse(
            registration_id=result.registration_id,
            user_id=result.user_id,
            status=_REGISTRATION_STATUS[result.status],
            already_verified=result.already_verified,
        )

    @_rpc
    async def ResendVerificationEmail(
        self, request: pb.ResendVerificationEmailRequest
    ) -> pb.ResendVerificationEmailResponse:
        result = await self._services.registration.resend_verification(
            registration_id=request.registration_id
        )
        return pb.ResendVerificationEmailResponse(
            registration_id=result.registration_id,
            next_resend_allowed_at=_timestamp(result.next_resend_allowed_at),
            resends_remaining=result.resends_remaining,
        )

    @_rpc
    async def GetRegistration(
        self, request: pb.GetRegistrationRequest
    ) -> pb.GetRegistrationResponse:
        record = await self._services.registration.get(registration_id=request.registration_id)
        return pb.GetRegistrationResponse(registration=registration_message(record))

    @_rpc
    async def Authenticate(self, request: pb.AuthenticateRequest) -> pb.AuthenticateResponse:
        signed_in = await self._services.sign_in.authenticate(
            email=request.email, password=request.password
        )
        return pb.AuthenticateResponse(user_id=signed_in.user_id)

    @_rpc
    async def RequestPasswordReset(
        self, request: pb.RequestPasswordResetRequest
    ) -> pb.RequestPasswordResetResponse:
        await self._services.password_reset.request(email=request.email)
        return pb.RequestPasswordResetResponse()

    @_rpc
    async def ResetPassword(self, request: pb.ResetPasswordRequest) -> pb.ResetPasswordResponse:
        await self._services.password_reset.reset(
            token=request.token, new_password=request.new_password
        )
        return pb.ResetPasswordResponse()

    @_rpc
    async def NotifyEnrollment(
        self, request: pb.NotifyEnrollmentRequest
    ) -> pb.NotifyEnrollmentResponse:
        notification_id = await self._services.notifications.notify_enrollment(
            EnrollmentRequest(
                order_id=request.order_id,
                organizer_email=request.organizer_email,
                organizer_name=request.organizer_name,
                enrollee_name=request.enrollee_name,
                offering_name=request.offering_name,
                enrollee_email=request.enrollee_email,
                enrolled_at=_optional_datetime(request, "enrolled_at"),
            )
        )
        return pb.NotifyEnrollmentResponse(notification_id=notification_id)

    @_rpc
    async def GetNotification(
        self, request: pb.GetNotificationRequest
    ) -> pb.GetNotificationResponse:
        record = await self._services.notifications.get(notification_id=request.notification_id)
        return pb.GetNotificationResponse(notification=notification_message(record))


async def _answer(
    context: grpc.aio.ServicerContext[Any, Response],
    request: object,
    call: Callable[[], Awaitable[Response]],
) -> Response:
    """Runs one call; every failure ends in exactly one abort with a documented status."""
    try:
        if isinstance(request, MalformedRequest):
            violation = FieldViolation(
                "request", f"is not a valid {request.message_type}: {request.reason}"
            )
            raise InvalidArgument([violation])
        # The client's deadline bounds our work too: past it, nobody waits for the answer.
        budget = asyncio.timeout(context.time_remaining())
        try:
            async with budget:
                return await call()
        except Exception:
            # Cancelled by the deadline, a call may surface as its library's own error
            # (Temporal's client turns it into WorkflowUpdateRPCTimeoutOrCancelledError).
            if not budget.expired():
                raise
        status = _status(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
    except RegistrationError as err:
        status = error_status(err)
    except Exception:
        # Our fault, never the client's: log it whole, answer without internals.
        log.exception("unexpected error")
        status = _status(grpc.StatusCode.INTERNAL, "internal error")
    await context.abort_with_status(rpc_status.to_status(status))
    raise AssertionError("abort_with_status returned")


def _status(code: grpc.StatusCode, message: str) -> status_pb2.Status:
    return status_pb2.Status(code=code.value[0], message=message)


def error_status(err: RegistrationError) -> status_pb2.Status:
    # The nearest mapped class, so that a more specific error inherits its parent's code.
    code = next(STATUS_FOR_ERROR[c] for c in type(err).__mro__ if c in STATUS_FOR_ERROR)
    status = _status(code, str(err))
    if isinstance(err, InvalidArgument):
        detail = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description
                )
                for v in err.violations
            ]
        )
        status.details.add().Pack(detail)
    if isinstance(err, TryLater):
        info = error_details_pb2.ErrorInfo(reason=err.reason, domain=SERVICE_NAME)
        if err.retry_at is not None:
            info.metadata["retry_at"] = err.retry_at.isoformat()
            retry = error_details_pb2.RetryInfo()
            retry.retry_delay.FromTimedelta(max(err.retry_at - utcnow(), timedelta(0)))
            status.details.add().Pack(retry)
        status.details.add().Pack(info)
    return status


def delivery_message(delivery: DeliveryRecord) -> pb.EmailDelivery:
    return pb.EmailDelivery(
        kind=_EMAIL_KIND[delivery.kind],
        status=_DELIVERY_STATUS[delivery.status],
        attempts=delivery.attempts,
        last_error=delivery.last_error or "",
        sent_at=_timestamp(delivery.sent_at),
        created_at=_timestamp(delivery.created_at),
        message_id=delivery.message_id or "",
    )


def notification_message(record: NotificationRecord) -> pb.Notification:
    return pb.Notification(
        notification_id=record.notification_id,
        kind=_EMAIL_KIND[record.kind],
        order_id=record.order_id,
        recipient=record.recipient,
        created_at=_timestamp(record.created_at),
        delivery=delivery_message(record.deliveries[0]) if record.deliveries else None,
    )


def registration_message(record: RegistrationRecord) -> pb.Registration:
    pending = record.status is RegistrationStatus.PENDING_VERIFICATION
    return pb.Registration(
        registration_id=record.registration_id,
        user_id=str(record.user_id),
        email=record.email,
        status=_REGISTRATION_STATUS[record.status],
        created_at=_timestamp(record.created_at),
        verified_at=_timestamp(record.verified_at),
        expires_at=_timestamp(record.expires_at),
        deliveries=[delivery_message(d) for d in record.deliveries],
        next_resend_allowed_at=_timestamp(record.next_resend_allowed_at if pending else None),
        resends_remaining=record.resends_remaining if pending else 0,
    )


def _optional_datetime(message: Message, field: str) -> datetime | None:
    """A Timestamp field as an aware datetime; one outside what a datetime can hold (a client
    may send any seconds) is the client's mistake."""
    if not message.HasField(field):
        return None
    stamp: timestamp_pb2.Timestamp = getattr(message, field)
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as err:
        raise InvalidArgument([FieldViolation(field, f"is not a valid time: {err}")]) from err


def _timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def create_server(
    address: str,
    services: Services,
    *,
    tls: tuple[bytes, bytes] | None = None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> tuple[grpc.aio.Server, int, HealthServicer]:
    """A server with the registration service, health and reflection, bound to `address`
    (port 0 picks a free one), with TLS when `tls` holds a PEM (certificate chain, key).
    Returns the server, the bound port and the health servicer."""
    server = grpc.aio.server(
        interceptors=list(interceptors),
        options=[("grpc.max_receive_message_length", MAX_REQUEST_BYTES)],
    )
    _add_servicer(RegistrationServicer(services), server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        [
            SERVICE_NAME,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    if tls is None:
        port = server.add_insecure_port(address)
    else:
        chain, key = tls
        port = server.add_secure_port(address, grpc.ssl_server_credentials([(key, chain)]))
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    return server, port, health


HEALTH_SERVICES = ["", SERVICE_NAME]
