"""RegistrationWorkflow: owns one registration from "user saved" to ACTIVE or EXPIRED.

Deterministic code only: every side effect is an activity, time comes from `workflow.now()`.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.registration import EMAIL_ALREADY_REGISTERED, RegistrationActivities
    from registration.status import DeliveryStatus, EmailKind, RegistrationStatus
    from workflows.contracts import (
        ActivateUserInput,
        CreatePendingUserInput,
        DeliveryFailedInput,
        DeliveryState,
        EmailRetrySettings,
        ExpireUserInput,
        RegistrationInput,
        RegistrationState,
        SendEmailInput,
        VerifyEmailRequest,
        VerifyEmailResult,
    )

# Database writes are quick; a database that is down for a while is waited out, never given
# up on, because a registration must not stop half-written.
DATABASE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=[EMAIL_ALREADY_REGISTERED],
)
DATABASE_TIMEOUT = timedelta(seconds=30)
# The email activity heartbeats every few seconds while it talks to the relay.
SEND_HEARTBEAT_TIMEOUT = timedelta(seconds=20)
EXPIRED_BEFORE_SENT = "registration expired before the email was sent"
STOPPED_VERIFIED = "stopped: the address was verified before this email was confirmed sent"


def email_retry_policy(settings: EmailRetrySettings) -> RetryPolicy:
    """Exponential backoff for email sends; the budget is enforced by schedule_to_close."""
    return RetryPolicy(
        initial_interval=timedelta(seconds=settings.initial_interval_seconds),
        backoff_coefficient=settings.backoff_coefficient,
        maximum_interval=timedelta(seconds=settings.maximum_interval_seconds),
        maximum_attempts=0,
    )


def delivery_id(registration_id: str, kind: EmailKind) -> str:
    return f"{registration_id}.{kind.value.lower()}.1"


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
            deliveries=[
                DeliveryState(
                    delivery_id(input.registration_id, EmailKind.VERIFICATION),
                    EmailKind.VERIFICATION,
                )
            ],
        )
        self._verification_requested = False
        self._closing = False

    @workflow.run
    async def run(self, input: RegistrationInput) -> RegistrationState:
        await workflow.execute_activity_method(
            RegistrationActivities.create_pending_user,
            CreatePendingUserInput(
                registration_id=input.registration_id,
                user_id=input.user_id,
                email=input.email,
                password_hash=input.password_hash,
                created_at=input.requested_at,
                expires_at=input.expires_at,
            ),
            start_to_close_timeout=DATABASE_TIMEOUT,
            retry_policy=DATABASE_RETRY,
        )
        verification_email = asyncio.create_task(self._send(self._state.deliveries[0]))

        remaining = max(0.0, (input.expires_at - workflow.now()).total_seconds())
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self._verification_requested, timeout=timedelta(seconds=remaining)
            )
        # Decided by the flag, not by how the wait ended: a verification accepted before the
        # deadline wins even when the timer fires in the same workflow task, and nothing is
        # accepted after the deadline (see _past_deadline).
        self._closing = True
        await self._stop(verification_email)
        if self._verification_requested:
            await self._activate()
            welcome = DeliveryState(
                delivery_id(input.registration_id, EmailKind.WELCOME), EmailKind.WELCOME
            )
            self._state.deliveries.append(welcome)
            await self._send(welcome)
        else:
            await self._expire()

        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    @workflow.update(name="verify_email")
    async def verify_email(self, request: VerifyEmailRequest) -> VerifyEmailResult:
        """Serves VerifyEmail: answers once the account is ACTIVE in the database."""
        self._verification_requested = True
        await workflow.wait_condition(
            lambda: self._state.status is not RegistrationStatus.PENDING_VERIFICATION
        )
        if self._state.status is not RegistrationStatus.ACTIVE:
            raise ApplicationError("registration has expired", type="Expired")
        return VerifyEmailResult(
            registration_id=self._state.registration_id,
            user_id=self._state.user_id,
            status=self._state.status,
            verified_at=self._state.verified_at,
        )

    @verify_email.validator
    def _validate_verify_email(self, request: VerifyEmailRequest) -> None:
        # Rejected updates leave no trace in history, so a late or misdirected click is cheap.
        if request.registration_id != self._state.registration_id:
            raise ApplicationError("token belongs to another registration", type="NotFound")
        if self._state.status is RegistrationStatus.ACTIVE or self._verification_requested:
            return  # a repeated click: it gets the same answer as the first
        if self._closing or self._past_deadline():
            raise ApplicationError("registration has expired", type="Expired")

    @workflow.signal(name="verify")
    def verify(self) -> None:
        """Lets an operator verify from the Temporal web UI or CLI."""
        if not self._verification_requested and (self._closing or self._past_deadline()):
            workflow.logger.info("verify signal ignored: registration has expired")
            return
        self._verification_requested = True

    def _past_deadline(self) -> bool:
        return workflow.now() >= self._input.expires_at

    @workflow.query(name="state")
    def state(self) -> RegistrationState:
        return self._state

    async def _activate(self) -> None:
        verified_at = workflow.now()
        await workflow.execute_activity_method(
            RegistrationActivities.activate_user,
            ActivateUserInput(registration_id=self._input.registration_id, verified_at=verified_at),
            start_to_close_timeout=DATABASE_TIMEOUT,
            retry_policy=DATABASE_RETRY,
        )
        self._state.status = RegistrationStatus.ACTIVE
        self._state.verified_at = verified_at

    async def _stop(self, verification_email: asyncio.Task[None]) -> None:
        """End the verification email's retries: once the registration is decided, a
        verification link is of no more use."""
        if verification_email.done():
            return
        verification_email.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await verification_email
        delivery = self._state.deliveries[0]
        if delivery.status is DeliveryStatus.PENDING:
            reason = STOPPED_VERIFIED if self._verification_requested else EXPIRED_BEFORE_SENT
            await self._record_failure(delivery, reason)

    async def _expire(self) -> None:
        await workflow.execute_activity_method(
            RegistrationActivities.expire_user,
            ExpireUserInput(registration_id=self._input.registration_id),
            start_to_close_timeout=DATABASE_TIMEOUT,
            retry_policy=DATABASE_RETRY,
        )
        self._state.status = RegistrationStatus.EXPIRED

    async def _send(self, delivery: DeliveryState) -> None:
        retry = self._input.email_retry
        try:
            result = await workflow.execute_activity_method(
                RegistrationActivities.send_email,
                SendEmailInput(
                    delivery_id=delivery.delivery_id,
                    registration_id=self._input.registration_id,
                    kind=delivery.kind,
                    recipient=self._input.email,
                    expires_at=self._input.expires_at,
                ),
                start_to_close_timeout=timedelta(seconds=retry.attempt_timeout_seconds),
                schedule_to_close_timeout=timedelta(seconds=retry.budget_seconds),
                retry_policy=email_retry_policy(retry),
                # The send heartbeats, so a cancellation reaches it mid-conversation, and the
                # workflow goes on only once the attempt has really stopped.
                heartbeat_timeout=SEND_HEARTBEAT_TIMEOUT,
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
        except ActivityError as err:
            if self._closing and delivery.kind is EmailKind.VERIFICATION:
                return  # cancelled by _stop, which records why
            await self._record_failure(delivery, _failure_reason(err))
            return
        delivery.status = DeliveryStatus.SENT
        delivery.attempts = result.attempts
        delivery.sent_at = result.sent_at

    async def _record_failure(self, delivery: DeliveryState, reason: str) -> None:
        delivery.status = DeliveryStatus.FAILED
        delivery.last_error = reason
        await workflow.execute_activity_method(
            RegistrationActivities.record_delivery_failure,
            DeliveryFailedInput(
                delivery_id=delivery.delivery_id,
                registration_id=self._input.registration_id,
                kind=delivery.kind,
                error=reason,
            ),
            start_to_close_timeout=DATABASE_TIMEOUT,
            retry_policy=DATABASE_RETRY,
        )


def _failure_reason(err: ActivityError) -> str:
    """The innermost failure: the SMTP reply of the last attempt, or the budget's timeout."""
    reason: BaseException = err
    while isinstance(reason, FailureError) and reason.cause is not None:
        reason = reason.cause
    return str(reason)
