"""The gRPC servicer: translates protobuf to the services and back, and every failure into
exactly one documented status. It never touches SQL or SMTP."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass
from grpc_status import rpc_status

from registration.domain.errors import FieldViolation, InvalidArgument, RegistrationError
from registration.entrypoints.grpc.callers import call_source
from registration.entrypoints.grpc.messages import (
    REGISTRATION_STATUS,
    SERVICE_NAME,
    notification_message,
    optional_datetime,
    registration_message,
    registration_status_message,
    timestamp,
)
from registration.entrypoints.grpc.status_codes import error_status, status_of
from registration.services.notifications import EnrollmentRequest
from registration.services.use_cases import Services
from registration.v1 import registration_pb2 as pb
from registration.v1 import registration_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

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


def add_servicer(servicer: RegistrationServicer, server: grpc.aio.Server) -> None:
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
            email=request.email, password=request.password, source=call_source()
        )
        return pb.RegisterUserResponse(
            registration_id=result.registration_id,
            status=REGISTRATION_STATUS[result.status],
            expires_at=timestamp(result.expires_at),
        )

    @_rpc
    async def VerifyEmail(self, request: pb.VerifyEmailRequest) -> pb.VerifyEmailResponse:
        result = await self._services.registration.verify(token=request.token)
        return pb.VerifyEmailResponse(
            registration_id=result.registration_id,
            user_id=result.user_id,
            status=REGISTRATION_STATUS[result.status],
            already_verified=result.already_verified,
        )

    @_rpc
    async def ConfirmRegistration(
        self, request: pb.ConfirmRegistrationRequest
    ) -> pb.ConfirmRegistrationResponse:
        result = await self._services.registration.confirm(registration_id=request.registration_id)
        return pb.ConfirmRegistrationResponse(
            registration_id=result.registration_id,
            user_id=result.user_id,
            status=REGISTRATION_STATUS[result.status],
            already_verified=result.already_verified,
        )

    @_rpc
    async def ResendVerificationEmail(
        self, request: pb.ResendVerificationEmailRequest
    ) -> pb.ResendVerificationEmailResponse:
        result = await self._services.registration.resend_verification(
            registration_id=request.registration_id, source=call_source()
        )
        return pb.ResendVerificationEmailResponse(
            registration_id=result.registration_id,
            next_resend_allowed_at=timestamp(result.next_resend_allowed_at),
            resends_remaining=result.resends_remaining,
        )

    @_rpc
    async def GetRegistrationStatus(
        self, request: pb.GetRegistrationStatusRequest
    ) -> pb.GetRegistrationStatusResponse:
        progress = await self._services.registration.progress(
            registration_id=request.registration_id
        )
        return registration_status_message(progress)

    @_rpc
    async def GetRegistration(
        self, request: pb.GetRegistrationRequest
    ) -> pb.GetRegistrationResponse:
        record = await self._services.registration.get(registration_id=request.registration_id)
        return pb.GetRegistrationResponse(registration=registration_message(record))

    @_rpc
    async def Authenticate(self, request: pb.AuthenticateRequest) -> pb.AuthenticateResponse:
        signed_in = await self._services.sign_in.authenticate(
            email=request.email, password=request.password, source=call_source()
        )
        return pb.AuthenticateResponse(user_id=signed_in.user_id)

    @_rpc
    async def RequestPasswordReset(
        self, request: pb.RequestPasswordResetRequest
    ) -> pb.RequestPasswordResetResponse:
        await self._services.password_reset.request(email=request.email, source=call_source())
        return pb.RequestPasswordResetResponse()

    @_rpc
    async def ResetPassword(self, request: pb.ResetPasswordRequest) -> pb.ResetPasswordResponse:
        await self._services.password_reset.reset(
            token=request.token, new_password=request.new_password, source=call_source()
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
                enrolled_at=optional_datetime(request, "enrolled_at"),
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
        status = status_of(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
    except RegistrationError as err:
        status = error_status(err)
    except Exception:
        # Our fault, never the client's: log it whole, answer without internals.
        log.exception("unexpected error")
        status = status_of(grpc.StatusCode.INTERNAL, "internal error")
    await context.abort_with_status(rpc_status.to_status(status))
    raise AssertionError("abort_with_status returned")
