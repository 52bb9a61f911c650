"""Activities of the registration workflow: the only place where it touches the database and SMTP.

Each activity is idempotent: Temporal may run it more than once (at-least-once), and a repeat
leaves the same rows and sends no second copy of an email already sent.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.database_calls import run_db
from activities.mailer import RecordedMailer
from registration.adapters.db.deliveries import DeliveryRepository
from registration.adapters.db.password_resets import PasswordResetRepository
from registration.adapters.db.registrations import (
    CreateOutcome,
    NewVerification,
    RegistrationRepository,
)
from registration.domain.clock import utcnow
from registration.domain.failures import EMAIL_ALREADY_REGISTERED, LINK_REPLACED
from registration.domain.identifiers import derive_token, hash_token
from registration.domain.records import DeliveryOwner
from workflows.contracts import (
    ActivateUserInput,
    CreatePendingUserInput,
    DeliveryFailedInput,
    DeliveryFailedResult,
    ExpireUserInput,
    LinkPurpose,
    NewVerificationInput,
    SendEmailInput,
    SendEmailResult,
    SendNoticeInput,
)


class RegistrationActivities:
    """Built once per worker by `worker.py` with the collaborators it needs."""

    def __init__(
        self,
        *,
        repository: RegistrationRepository,
        deliveries: DeliveryRepository,
        resets: PasswordResetRepository,
        mailer: RecordedMailer,
        secret_key: bytes,
        public_base_url: str,
    ) -> None:
        self._repository = repository
        self._deliveries = deliveries
        self._resets = resets
        self._mailer = mailer
        self._secret_key = secret_key
        self._public_base_url = public_base_url

    @activity.defn(name="create_pending_user")
    async def create_pending_user(self, input: CreatePendingUserInput) -> None:
        outcome = await run_db(
            self._repository.create_pending_user,
            user_id=uuid.UUID(input.user_id),
            registration_id=input.registration_id,
            email=input.email,
            password_hash=input.password_hash,
            created_at=input.created_at,
            expires_at=input.expires_at,
            verification=self._verification(
                input.verification_delivery_id,
                input.next_resend_allowed_at,
                input.resends_remaining,
            ),
        )
        if outcome is CreateOutcome.EMAIL_TAKEN:
            raise ApplicationError(
                "another registration holds this email address",
                type=EMAIL_ALREADY_REGISTERED,
                non_retryable=True,
            )

    @activity.defn(name="start_new_verification")
    async def start_new_verification(self, input: NewVerificationInput) -> None:
        """A resend: from now on only the new delivery's link works."""
        await run_db(
            self._repository.start_new_verification,
            registration_id=input.registration_id,
            verification=self._verification(
                input.delivery_id, input.next_resend_allowed_at, input.resends_remaining
            ),
            now=input.created_at,
        )

    @activity.defn(name="send_email")
    async def send_email(self, input: SendEmailInput) -> SendEmailResult:
        async def context() -> dict[str, Any]:
            values: dict[str, Any] = {"expires_at": input.expires_at}
            if input.link_delivery_id is not None:
                values["link"] = await self._live_link(input)
            return values

        return await self._mailer.send(
            delivery_id=input.delivery_id,
            owner=DeliveryOwner(registration_id=input.registration_id),
            kind=input.kind,
            recipient=input.recipient,
            context=context,
        )

    @activity.defn(name="send_notice")
    async def send_notice(self, input: SendNoticeInput) -> None:
        await self._mailer.send_unrecorded(
            notice_id=input.notice_id, kind=input.kind, recipient=input.recipient
        )

    @activity.defn(name="record_delivery_failure")
    async def record_delivery_failure(self, input: DeliveryFailedInput) -> DeliveryFailedResult:
        record = await run_db(
            self._deliveries.mark_delivery_failed,
            delivery_id=input.delivery_id,
            owner=DeliveryOwner(
                registration_id=input.registration_id, notification_id=input.notification_id
            ),
            kind=input.kind,
            error=input.error,
            now=utcnow(),
        )
        return DeliveryFailedResult(attempts=record.attempts)

    @activity.defn(name="activate_user")
    async def activate_user(self, input: ActivateUserInput) -> None:
        await run_db(
            self._repository.activate,
            registration_id=input.registration_id,
            verified_at=input.verified_at,
        )

    @activity.defn(name="expire_user")
    async def expire_user(self, input: ExpireUserInput) -> None:
        await run_db(self._repository.expire, registration_id=input.registration_id, now=utcnow())

    async def _live_link(self, input: SendEmailInput) -> str:
        """The email's link, derived again (never stored or passed through Temporal), and
        only while it still works: not once a resend replaced it, the registration was
        decided, or the password reset was used or ran out."""
        assert input.link_delivery_id is not None
        purpose = input.link_purpose
        token = derive_token(self._secret_key, input.link_delivery_id, purpose=purpose.value)
        if purpose is LinkPurpose.RESET_PASSWORD:
            live = await run_db(self._resets.link_is_live, token_hash=hash_token(token))
        else:
            live = await run_db(
                self._repository.link_is_live,
                registration_id=input.registration_id,
                token_hash=hash_token(token),
            )
        if not live:
            raise ApplicationError(
                "the link no longer works: it was replaced, used, or its registration or "
                "reset has ended",
                type=LINK_REPLACED,
                non_retryable=True,
            )
        return f"{self._public_base_url}/{purpose.value}?token={token}"

    def _verification(
        self, delivery_id: str, next_resend_at: datetime | None, resends_remaining: int
    ) -> NewVerification:
        """A verification delivery with its link's token, derived here and stored hashed:
        the token itself never passes through Temporal."""
        return NewVerification(
            delivery_id=delivery_id,
            token_hash=hash_token(derive_token(self._secret_key, delivery_id)),
            next_resend_at=next_resend_at,
            resends_remaining=resends_remaining,
        )
