"""RegistrationWorkflow on the time-skipping test server, with activity doubles."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from registration.status import DeliveryStatus, EmailKind, RegistrationStatus
from workflows.contracts import (
    ActivateUserInput,
    CreatePendingUserInput,
    DeliveryFailedInput,
    EmailRetrySettings,
    ExpireUserInput,
    RegistrationInput,
    RegistrationState,
    SendEmailInput,
    SendEmailResult,
    VerifyEmailRequest,
)
from workflows.registration import EXPIRED_BEFORE_SENT, STOPPED_VERIFIED, RegistrationWorkflow

FAST_RETRY = EmailRetrySettings(
    initial_interval_seconds=0.1,
    backoff_coefficient=2.0,
    maximum_interval_seconds=60.0,
    budget_seconds=3600,
)


@dataclass
class FakeActivities:
    """Stand-ins for the real activities, recording what the workflow asked of them."""

    send_failures: int = 0
    failing_kinds: frozenset[EmailKind] = frozenset(EmailKind)
    send_fails_permanently: bool = False
    email_taken: bool = False
    created: list[str] = field(default_factory=list)
    sent: list[tuple[EmailKind, int]] = field(default_factory=list)
    failed: list[DeliveryFailedInput] = field(default_factory=list)
    activated: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)

    def all(self) -> list[object]:
        @activity.defn(name="create_pending_user")
        async def create_pending_user(input: CreatePendingUserInput) -> None:
            if self.email_taken:
                raise ApplicationError("taken", type="EmailAlreadyRegistered", non_retryable=True)
            self.created.append(input.registration_id)

        @activity.defn(name="send_email")
        async def send_email(input: SendEmailInput) -> SendEmailResult:
            attempt = activity.info().attempt
            if self.send_fails_permanently:
                raise ApplicationError("550 mailbox unavailable", non_retryable=True)
            if attempt <= self.send_failures and input.kind in self.failing_kinds:
                raise ApplicationError(f"421 try again later (attempt {attempt})")
            self.sent.append((input.kind, attempt))
            return SendEmailResult(attempts=attempt, sent_at=datetime.now(UTC))

        @activity.defn(name="record_delivery_failure")
        async def record_delivery_failure(input: DeliveryFailedInput) -> None:
            self.failed.append(input)

        @activity.defn(name="activate_user")
        async def activate_user(input: ActivateUserInput) -> None:
            self.activated.append(input.registration_id)

        @activity.defn(name="expire_user")
        async def expire_user(input: ExpireUserInput) -> None:
            self.expired.append(input.registration_id)

        return [
            create_pending_user,
            send_email,
            record_delivery_failure,
            activate_user,
            expire_user,
        ]


async def registration_input(
    env: WorkflowEnvironment, *, valid_for: timedelta = timedelta(hours=24)
) -> RegistrationInput:
    # The test server's clock runs ahead of the wall clock once it has skipped time.
    now = await env.get_current_time()
    return RegistrationInput(
        registration_id=f"reg-{uuid.uuid4().hex}",
        user_id=str(uuid.uuid4()),
        email="ann@example.com",
        password_hash="$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
        requested_at=now,
        expires_at=now + valid_for,
        email_retry=FAST_RETRY,
    )


@dataclass
class Harness:
    env: WorkflowEnvironment
    task_queue: str
    fakes: FakeActivities
    started: list[WorkflowHandle[RegistrationWorkflow, RegistrationState]] = field(
        default_factory=list
    )

    async def start(
        self, valid_for: timedelta = timedelta(hours=24)
    ) -> tuple[RegistrationInput, WorkflowHandle[RegistrationWorkflow, RegistrationState]]:
        input = await registration_input(self.env, valid_for=valid_for)
        handle = await self.env.client.start_workflow(
            RegistrationWorkflow.run,
            input,
            id=f"wf-{input.registration_id}",
            task_queue=self.task_queue,
        )
        self.started.append(handle)
        return input, handle

    async def end_all(self) -> None:
        """The test server's clock is shared: a workflow left running with its worker gone
        would hold time skipping for every later test."""
        for handle in self.started:
            with contextlib.suppress(RPCError):
                await handle.terminate("test over")


@pytest.fixture
async def harness(time_skipping_env: WorkflowEnvironment) -> AsyncIterator[Harness]:
    fakes = FakeActivities()
    task_queue = f"test-{uuid.uuid4()}"  # a fresh queue: no test sees another's workflows
    async with Worker(
        time_skipping_env.client,
        task_queue=task_queue,
        workflows=[RegistrationWorkflow],
        activities=fakes.all(),
    ):
        harness = Harness(time_skipping_env, task_queue, fakes)
        try:
            yield harness
        finally:
            await harness.end_all()


async def wait_for_sent(
    handle: WorkflowHandle[RegistrationWorkflow, RegistrationState],
) -> RegistrationState:
    for _ in range(200):
        state = await handle.query(RegistrationWorkflow.state)
        if state.deliveries[0].status is not DeliveryStatus.PENDING:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError("the verification email was never sent")


async def test_verified_registration_becomes_active_and_gets_a_welcome_email(
    harness: Harness,
) -> None:
    fakes = harness.fakes
    input, handle = await harness.start()
    await wait_for_sent(handle)

    result = await handle.execute_update(
        RegistrationWorkflow.verify_email, VerifyEmailRequest(input.registration_id)
    )
    assert result.status is RegistrationStatus.ACTIVE
    assert result.user_id == input.user_id
    assert fakes.activated == [input.registration_id]

    final = await handle.result()
    assert final.status is RegistrationStatus.ACTIVE
    assert final.verified_at is not None
    assert [(d.kind, d.status) for d in final.deliveries] == [
        (EmailKind.VERIFICATION, DeliveryStatus.SENT),
        (EmailKind.WELCOME, DeliveryStatus.SENT),
    ]
    assert fakes.created == [input.registration_id]
    assert fakes.expired == []


async def test_unverified_registration_expires_after_24_hours_of_skipped_time(
    harness: Harness,
) -> None:
    fakes = harness.fakes
    input, handle = await harness.start()

    started = time.monotonic()
    final = await handle.result()
    wall = time.monotonic() - started

    assert final.status is RegistrationStatus.EXPIRED
    assert fakes.expired == [input.registration_id]
    assert fakes.activated == []
    assert [k for k, _ in fakes.sent] == [EmailKind.VERIFICATION]
    # 24 hours passed for the workflow; the test server skipped them.
    assert wall < 10, f"time skipping took {wall:.1f}s of wall time"


async def test_email_failing_twice_is_retried_and_counts_three_attempts(
    harness: Harness,
) -> None:
    fakes = harness.fakes
    fakes.send_failures = 2
    _, handle = await harness.start()

    state = await wait_for_sent(handle)
    delivery = state.deliveries[0]
    assert delivery.status is DeliveryStatus.SENT
    assert delivery.attempts == 3
    assert fakes.sent == [(EmailKind.VERIFICATION, 3)]
    assert fakes.failed == []


async def test_permanent_email_failure_records_failed_delivery_and_registration_stays_pending(
    harness: Harness,
) -> None:
    fakes = harness.fakes
    fakes.send_fails_permanently = True
    _, handle = await harness.start()

    state = await wait_for_sent(handle)
    assert state.status is RegistrationStatus.PENDING_VERIFICATION
    assert state.deliveries[0].status is DeliveryStatus.FAILED
    assert "550 mailbox unavailable" in (state.deliveries[0].last_error or "")
    assert [f.delivery_id for f in fakes.failed] == [state.deliveries[0].delivery_id]

    final = await handle.result()
    assert final.status is RegistrationStatus.EXPIRED


async def test_verify_update_for_another_registration_is_rejected(
    harness: Harness,
) -> None:
    fakes = harness.fakes
    _, handle = await harness.start()
    await wait_for_sent(handle)

    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(
            RegistrationWorkflow.verify_email, VerifyEmailRequest("reg-someone-else")
        )
    state = await handle.query(RegistrationWorkflow.state)
    assert state.status is RegistrationStatus.PENDING_VERIFICATION
    assert fakes.activated == []
    await handle.terminate()


async def test_operator_verify_signal_activates(
    harness: Harness,
) -> None:
    fakes = harness.fakes
    input, handle = await harness.start()
    await wait_for_sent(handle)

    await handle.signal(RegistrationWorkflow.verify)
    final = await handle.result()
    assert final.status is RegistrationStatus.ACTIVE
    assert fakes.activated == [input.registration_id]


async def test_email_taken_by_another_registration_ends_without_sending(
    harness: Harness,
) -> None:
    fakes = harness.fakes
    fakes.email_taken = True
    _, handle = await harness.start()

    with pytest.raises(WorkflowFailureError):
        await handle.result()
    assert fakes.sent == []


async def test_verification_still_retrying_is_stopped_when_an_operator_verifies(
    harness: Harness,
) -> None:
    fakes = harness.fakes
    fakes.send_failures = 10_000  # the relay keeps answering 421 to the verification email
    fakes.failing_kinds = frozenset({EmailKind.VERIFICATION})
    _, handle = await harness.start()
    await asyncio.sleep(0.5)  # a few attempts fail meanwhile

    await handle.signal(RegistrationWorkflow.verify)
    final = await handle.result()

    assert final.status is RegistrationStatus.ACTIVE
    verification, welcome = final.deliveries
    assert verification.status is DeliveryStatus.FAILED
    assert verification.last_error == STOPPED_VERIFIED
    assert welcome.status is DeliveryStatus.SENT
    # No "confirm your email" went out after the account was active.
    assert fakes.sent == [(EmailKind.WELCOME, 1)]


async def test_expiry_while_the_email_is_retrying_records_why_it_never_went_out(
    harness: Harness,
) -> None:
    fakes = harness.fakes
    fakes.send_failures = 10_000
    # Expiry comes first: the email's retry budget (1 h) would have lasted longer.
    input, handle = await harness.start(valid_for=timedelta(minutes=30))

    final = await handle.result()

    assert final.status is RegistrationStatus.EXPIRED
    assert final.deliveries[0].status is DeliveryStatus.FAILED
    assert final.deliveries[0].last_error == EXPIRED_BEFORE_SENT
    assert [f.error for f in fakes.failed] == [EXPIRED_BEFORE_SENT]
    assert fakes.expired == [input.registration_id]
