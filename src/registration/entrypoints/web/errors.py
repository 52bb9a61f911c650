"""gRPC answers in the words of a page: each field's problem next to its field, and one
plain sentence for the rest."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from registration.v1 import registration_pb2 as pb

GENERAL = ""


@dataclass
class Problems:
    """Messages by form field; GENERAL for the page as a whole."""

    by_field: dict[str, str] = field(default_factory=dict)
    retry_at: datetime | None = None

    def add(self, name: str, message: str) -> None:
        self.by_field.setdefault(name, message)

    def __bool__(self) -> bool:
        return bool(self.by_field)


def problems_of(err: grpc.aio.AioRpcError, general: dict[grpc.StatusCode, str]) -> Problems:
    """The BadRequest's field violations, each under its field; anything else under GENERAL,
    in the words `general` has for its status code."""
    found = Problems()
    status = rpc_status.from_call(err)
    for detail in status.details if status is not None else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            for violation in bad.field_violations:
                found.add(violation.field, _sentence(violation.description))
        elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            if "retry_at" in info.metadata:
                found.retry_at = datetime.fromisoformat(info.metadata["retry_at"]).astimezone(UTC)
    if not found:
        found.add(GENERAL, general.get(err.code(), UNAVAILABLE))
    return found


UNAVAILABLE = "The service cannot answer right now. Please try again in a moment."


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


DELIVERY_REASONS = {
    pb.DELIVERY_PROBLEM_ADDRESS_REFUSED: (
        "The mail server refused the address. Check that it is spelled right, or try another one."
    ),
    pb.DELIVERY_PROBLEM_PREPARING: "The email is being prepared; it will go out shortly.",
    pb.DELIVERY_PROBLEM_REPLACED: "This email was replaced by a newer one.",
    pb.DELIVERY_PROBLEM_SERVER_UNREACHABLE: (
        "The mail server could not be reached for a while; we gave up on this email."
    ),
}


def delivery_reason(problem: pb.DeliveryProblem) -> str:
    """Why an email could not be delivered, for the person waiting for it ("" if it was)."""
    return DELIVERY_REASONS.get(problem, "")
