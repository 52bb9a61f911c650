"""RegistrationWorkflow: owns one registration from "user saved" to ACTIVE or EXPIRED.

Deterministic code only: every side effect is an activity, time comes from `workflow.now()`.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from registration.domain.email_kinds import EmailKind
    from registration.domain.failures import (
        ALREADY_VERIFIED,
        REGISTRATION_EXPIRED,
        REGISTRATION_NOT_FOUND,
        RESEND_COOLDOWN,
        RESEND_LIMIT,
    )
    from registration.domain.statuses import RegistrationStatus
    from workflows.activity_interfaces import (
        activate_user,
        create_pending_user,
        expire_user,
        start_new_verification,
    )
    from workflows.contracts import (
        SIGNALS_CARRY_PROOF,
        ActivateUserInput,
        CreatePendingUserInput,
        ExpireUserInput,
        LinkPurpose,
        NewVerificationInput,
        RegistrationInput,
        RegistrationState,
        ResendRequest,
        ResendResult,
        VerifyEmailRequest,
        VerifyEmailResult,
    )
    from workflows.database_steps import database_step
    from workflows.outbox import Outbox
    from workflows.search_attributes import EMAIL_DELIVERY_STATUS, REGISTRATION_STATUS

EXPIRED_BEFORE_SENT = "registration expired before the email was sent"
STOPPED_VERIFIED = "stopped: the address was verified before this email was confirmed sent"
REPLACED_BY_RESEND = "stopped: a resend replaced this link before it was confirmed sent"


@workflow.defn
class RegistrationWorkflow:
    @workflow.init
    def __init__(self, input: RegistrationInput) -> None:
        self._input = input
        self._state = RegistrationState(
            registration_id=input.registration_id,
            user_id=input.user_id,
            email=input.email,
            status=RegistrationStatus.PENDING_VERIFICATION,
            created_at=input.requested_at,
            expires_at=input.expires_at,
            resends_remaining=input.resend.limit,
            next_resend_allowed_at=self._next_resend_at(input.requested_at, input.resend.limit),
        )
        self._outbox = Outbox(
            deliveries=self._state.deliveries,
            id_prefix=input.registration_id,
            recipient=input.email,
            expires_at=input.expires_at,
            retry=input.email_retry,
            task_queue=input.email_task_queue,
            link_purpose=LinkPurpose.VERIFY_EMAIL,
            registration_id=input.registration_id,
            on_change=self._publish,
        )
        # The verification delivery whose token is the one that works now.
        self._link = self._outbox.add(EmailKind.VERIFICATION, input.requested_at)
        # What the search attributes hold now: what the start request set, if it set them.
        started = workflow.info().typed_search_attributes
        status, email = started.get(REGISTRATION_STATUS), started.get(EMAIL_DELIVERY_STATUS)
        self._published: tuple[str, str] | None = (
            (status, email) if status is not None and email is not None else None
        )
        self._persisted = False
        self._verification_requested = False
        self._closing = False
        # Resends, the reminder and the closing of the registration take turns: each of them
        # stops or starts link emails, and none may see another halfway through.
        self._turn = asyncio.Lock()

    @workflow.run
    async def run(self, input: RegistrationInput) -> RegistrationState:
        self._publish()
        await database_step(
            create_pending_user,
            CreatePendingUserInput(
                registration_id=input.registration_id,
                user_id=input.user_id,
                email=input.email,
                password_hash=input.password_hash,
                created_at=input.requested_at,
                expires_at=input.expires_at,
                verification_delivery_id=self._link.delivery_id,
                next_resend_allowed_at=self._state.next_resend_allowed_at,
                resends_remaining=self._state.resends_remaining,
            ),
        )
        self._persisted = True
        self._outbox.start_link_send(self._link, link=self._link)
        reminder = (
            asyncio.create_task(self._remind_at(input.remind_at))
            if input.remind_at is not None
            else None
        )

        remaining = max(0.0, (input.expires_at - workflow.now()).total_seconds())
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self._verification_requested, timeout=timedelta(seconds=remaining)
            )
        # Decided by the flag, not by how the wait ended: a verification accepted before the
        # deadline wins even when the timer fires in the same workflow task, and nothing is
        # accepted after the deadline (see _past_deadline).
        self._closing = True
        if reminder is not None:
            reminder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reminder
        async with self._turn:
            # Once the registration is decided, a verification link is of no more use.
            await self._outbox.stop_link_sends(
                STOPPED_VERIFIED if self._verification_requested else EXPIRED_BEFORE_SENT
            )
        self._state.next_resend_allowed_at = None
        self._state.resends_remaining = 0
        if self._verification_requested:
            await self._activate()
            # Sent after activation: its failure can neither undo nor delay it.
            await self._outbox.send(self._outbox.add(EmailKind.WELCOME, workflow.now()))
        else:
            await self._expire()

        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    @workflow.update(name="verify_email")
    async def verify_email(self, request: VerifyEmailRequest) -> VerifyEmailResult:
        """Serves VerifyEmail: answers once the account is ACTIVE in the database."""
        already = self._verification_requested
        self._verification_requested = True
        await workflow.wait_condition(
            lambda: self._state.status is not RegistrationStatus.PENDING_VERIFICATION
        )
        if self._state.status is not RegistrationStatus.ACTIVE:
            raise ApplicationError("registration has expired", type=REGISTRATION_EXPIRED)
        return VerifyEmailResult(
            registration_id=self._state.registration_id,
            user_id=self._state.user_id,
            status=self._state.status,
            verified_at=self._state.verified_at,
            already_verified=already,
        )

    @verify_email.validator
    def _validate_verify_email(self, request: VerifyEmailRequest) -> None:
        # Rejected updates leave no trace in history, so a late or misdirected click is cheap.
        if request.registration_id != self._state.registration_id:
            raise ApplicationError(
                "token belongs to another registration", type=REGISTRATION_NOT_FOUND
            )
        if self._state.status is RegistrationStatus.ACTIVE or self._verification_requested:
            return  # a repeated click: it gets the same answer as the first
        if self._closing or self._past_deadline():
            raise ApplicationError("registration has expired", type=REGISTRATION_EXPIRED)

    @workflow.update(name="resend_verification")
    async def resend_verification(self, request: ResendRequest) -> ResendResult:
        """Serves ResendVerificationEmail: a new email with a new link; the old link stops
        working. The verification deadline stays where it is."""
        await workflow.wait_condition(lambda: self._persisted)
        async with self._turn:
            # Checked again: another resend or the deadline may have come since validation.
            self._check_resend_allowed(request)
            now = workflow.now()
            self._state.resends_remaining -= 1
            self._state.next_resend_allowed_at = self._next_resend_at(
                now, self._state.resends_remaining
            )
            await self._outbox.stop_link_sends(REPLACED_BY_RESEND)
            self._link = self._outbox.add(EmailKind.VERIFICATION, now)
            self._publish()
            await database_step(
                start_new_verification,
                NewVerificationInput(
                    registration_id=self._input.registration_id,
                    delivery_id=self._link.delivery_id,
                    created_at=now,
                    next_resend_allowed_at=self._state.next_resend_allowed_at,
                    resends_remaining=self._state.resends_remaining,
                ),
            )
            self._outbox.start_link_send(self._link, link=self._link)
        return ResendResult(
            registration_id=self._state.registration_id,
            next_resend_allowed_at=self._state.next_resend_allowed_at,
            resends_remaining=self._state.resends_remaining,
        )

    @resend_verification.validator
    def _validate_resend(self, request: ResendRequest) -> None:
        self._check_resend_allowed(request)

    @workflow.signal(name="verify")
    def verify(self) -> None:
        """Verifies nothing: anyone who can reach Temporal can send a signal, so it proves
        nothing (an operator confirms with ConfirmRegistration). Runs that began before
        replay as they ran."""
        if workflow.patched(SIGNALS_CARRY_PROOF):
            workflow.logger.warning("verify signal ignored: a signal proves nothing")
            return
        if not self._verification_requested and (self._closing or self._past_deadline()):
            workflow.logger.info("verify signal ignored: registration has expired")
            return
        self._verification_requested = True

    @workflow.query(name="state")
    def state(self) -> RegistrationState:
        return self._state

    def _publish(self) -> None:
        """The search attributes follow the registration and its newest verification email
        (states only, never personal data); upserted only when they change."""
        published = (self._state.status.value, self._link.status.value)
        if published == self._published:
            return
        self._published = published
        workflow.upsert_search_attributes(
            [
                REGISTRATION_STATUS.value_set(published[0]),
                EMAIL_DELIVERY_STATUS.value_set(published[1]),
            ]
        )

    def _past_deadline(self) -> bool:
        return workflow.now() >= self._input.expires_at

    def _check_resend_allowed(self, request: ResendRequest) -> None:
        state = self._state
        if request.registration_id != state.registration_id:
            raise ApplicationError("no such registration", type=REGISTRATION_NOT_FOUND)
        if state.status is RegistrationStatus.ACTIVE or self._verification_requested:
            raise ApplicationError("the address is already verified", type=ALREADY_VERIFIED)
        if self._closing or self._past_deadline():
            raise ApplicationError("registration has expired", type=REGISTRATION_EXPIRED)
        allowed_at = state.next_resend_allowed_at
        if state.resends_remaining <= 0 or allowed_at is None:
            raise ApplicationError("no resend is left for this registration", type=RESEND_LIMIT)
        if workflow.now() < allowed_at:
            raise ApplicationError(
                f"the next resend is allowed at {allowed_at.isoformat()}",
                allowed_at.isoformat(),
                type=RESEND_COOLDOWN,
            )

    def _next_resend_at(self, now: datetime, resends_remaining: int) -> datetime | None:
        if resends_remaining <= 0:
            return None
        return now + timedelta(seconds=self._input.resend.cooldown_seconds)

    async def _remind_at(self, at: datetime) -> None:
        await workflow.sleep(max(timedelta(0), at - workflow.now()))
        async with self._turn:
            if self._closing or self._verification_requested:
                return
            reminder = self._outbox.add(EmailKind.REMINDER, workflow.now())
            self._outbox.start_link_send(reminder, link=self._link)

    async def _activate(self) -> None:
        verified_at = workflow.now()
        await database_step(
            activate_user,
            ActivateUserInput(registration_id=self._input.registration_id, verified_at=verified_at),
        )
        self._state.status = RegistrationStatus.ACTIVE
        self._state.verified_at = verified_at
        self._publish()

    async def _expire(self) -> None:
        await database_step(
            expire_user,
            ExpireUserInput(registration_id=self._input.registration_id),
        )
        self._state.status = RegistrationStatus.EXPIRED
        self._publish()
