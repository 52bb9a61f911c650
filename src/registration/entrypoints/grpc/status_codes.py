"""The one table of application errors → gRPC status codes, and the rich details a status
carries: google.rpc.BadRequest naming each field at fault, ErrorInfo and RetryInfo for a
limit that holds."""

from __future__ import annotations

from datetime import timedelta

import grpc
from google.rpc import error_details_pb2, status_pb2

from registration.domain.clock import utcnow
from registration.domain.errors import (
    AlreadyExists,
    DependencyUnavailable,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    RegistrationError,
    RegistrationExpired,
    TryLater,
    Unauthenticated,
)
from registration.entrypoints.grpc.messages import SERVICE_NAME

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


def status_of(code: grpc.StatusCode, message: str) -> status_pb2.Status:
    return status_pb2.Status(code=code.value[0], message=message)


def error_status(err: RegistrationError) -> status_pb2.Status:
    # The nearest mapped class, so that a more specific error inherits its parent's code.
    code = next(STATUS_FOR_ERROR[c] for c in type(err).__mro__ if c in STATUS_FOR_ERROR)
    status = status_of(code, str(err))
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
