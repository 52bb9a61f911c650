"""Activities of the registration workflow: the only place where it touches the database and SMTP.

Each activity is idempotent: Temporal may run it more than once (at-least-once), and a repeat
leaves the same rows and sends no second copy of an email already sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import ParamSpec, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.email_failures import smtp_failure
from registration.db import utcnow
from registration.identifiers import derive_token, hash_token
from registration.mail import MailSender, OutgoingEmail, TemplateRenderer, message_id_for
from registration.repository import CreateOutcome, RegistrationRepository
from registration.status import DeliveryStatus, EmailKind, RegistrationStatus
from workflows.contracts import (
    ActivateUserInput,
    CreatePendingUserInput,
    DeliveryFailedInput,
    ExpireUserInput,
    SendEmailInput,
    SendEmailResult,
    SendNoticeInput,
)

EMAIL_ALREADY_REGISTERED = "EmailAlreadyRegistered"
PENDING = RegistrationStatus.PENDING_VERIFICATION
P = ParamSpec("P")
T = TypeVar("T")


class RegistrationActivities:
    """Built once per worker by `worker.py` with the collaborators it needs."""

    def __init__(
        self,
        *,
        repository: RegistrationRepository,
        renderer: TemplateRenderer,
        sender: MailSender,
        secret_key: bytes,
        public_base_url: str,
        from_email: str,
    ) -> None:
        self._repository = repository
        self._renderer = renderer
        self._sender = sender
        self._secret_key = secret_key
        self._public_base_url = public_base_url
        self._from_email = from_email

    @activity.defn(name="create_pending_user")
    async def create_pending_user(self, input: CreatePendingUserInput) -> None:
        outcome = await self._db(
            self._repository.create_pending_user,
            user_id=uuid.UUID(input.user_id),
            registration_id=input.registration_id,
            email=input.email,
            password_hash=input.password_hash,
            created_at=input.created_at,
            expires_at=input.expires_at,
        )
        if outcome is CreateOutcome.EMAIL_TAKEN:
            raise ApplicationError(
                "another registration holds this email address",
                type=EMAIL_ALREADY_REGISTERED,
                non_retryable=True,
            )

    @activity.defn(name="send_email")
    async def send_email(self, input: SendEmailInput) -> SendEmailResult:
        attempt = activity.info().attempt
        delivery = await self._db(
            self._repository.record_delivery_attempt,
            delivery_id=input.delivery_id,
            registration_id=input.registration_id,
            kind=input.kind,
            attempt=attempt,
            now=utcnow(),
        )
        if delivery.status is DeliveryStatus.SENT and delivery.sent_at is not None:
            # An earlier attempt sent it but its completion never reached Temporal.
            return SendEmailResult(attempts=delivery.attempts, sent_at=delivery.sent_at)
        if delivery.status is DeliveryStatus.FAILED:
            raise ApplicationError("delivery has already ended", non_retryable=True)

        context: dict[str, object] = {"expires_at": input.expires_at}
        if input.kind is EmailKind.VERIFICATION:
            registration = await self._db(
                self._repository.get_registration, registration_id=input.registration_id
            )
            if registration is None or registration.status is not PENDING:
                # Verified or expired meanwhile: a link would be useless or misleading.
                raise ApplicationError("registration is no longer pending", non_retryable=True)
            token = derive_token(self._secret_key, input.delivery_id)
            await self._db(
                self._repository.set_verification_token_hash,
                registration_id=input.registration_id,
                token_hash=hash_token(token),
                now=utcnow(),
            )
            context["link"] = f"{self._public_base_url}/verify?token={token}"
        email = self._renderer.render(
            input.kind,
            recipient=input.recipient,
            message_id=message_id_for(input.delivery_id, self._from_email),
            **context,
        )
        try:
            await self._deliver(email)
        except ApplicationError as failure:
            await self._db(
                self._repository.record_delivery_error,
                delivery_id=input.delivery_id,
                error=failure.message,
                now=utcnow(),
            )
            raise
        sent = await self._db(
            self._repository.mark_delivery_sent, delivery_id=input.delivery_id, sent_at=utcnow()
        )
        activity.logger.info("sent %s email for delivery %s", input.kind.value, input.delivery_id)
        if sent.sent_at is None:
            raise ApplicationError("delivery ended while sending", non_retryable=True)
        return SendEmailResult(attempts=sent.attempts, sent_at=sent.sent_at)

    @activity.defn(name="send_notice")
    async def send_notice(self, input: SendNoticeInput) -> None:
        email = self._renderer.render(
            input.kind,
            recipient=input.recipient,
            message_id=message_id_for(input.notice_id, self._from_email),
        )
        await self._deliver(email)
        activity.logger.info("sent %s notice %s", input.kind.value, input.notice_id)

    @activity.defn(name="record_delivery_failure")
    async def record_delivery_failure(self, input: DeliveryFailedInput) -> None:
        await self._db(
            self._repository.mark_delivery_failed,
            delivery_id=input.delivery_id,
            registration_id=input.registration_id,
            kind=input.kind,
            error=input.error,
            now=utcnow(),
        )

    @activity.defn(name="activate_user")
    async def activate_user(self, input: ActivateUserInput) -> None:
        await self._db(
            self._repository.activate,
            registration_id=input.registration_id,
            verified_at=input.verified_at,
        )

    @activity.defn(name="expire_user")
    async def expire_user(self, input: ExpireUserInput) -> None:
        await self._db(self._repository.expire, registration_id=input.registration_id, now=utcnow())

    async def _deliver(self, email: OutgoingEmail) -> None:
        """Send, heartbeating so that a cancellation reaches a long SMTP exchange; a failure
        comes out classified (permanent or transient) and without the recipient's address."""
        try:
            async with heartbeating():
                await self._sender.send(email)
        except Exception as err:
            # `from None`: the original exception's text may name the recipient.
            raise smtp_failure(err, email.recipient) from None

    async def _db(self, call: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Runs a repository call off the event loop. A broken invariant (a row that must
        exist does not) is not retried: no retry can mend it, and it must be seen."""
        try:
            return await asyncio.to_thread(call, *args, **kwargs)
        except (LookupError, ValueError) as err:
            raise ApplicationError(str(err), type="InvariantViolated", non_retryable=True) from err


@contextlib.asynccontextmanager
async def heartbeating(every: float = 5.0) -> AsyncIterator[None]:
    """Heartbeat while the body runs."""

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(every)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
