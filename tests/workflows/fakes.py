"""Stand-ins for the registration activities and a harness that runs RegistrationWorkflow
with them on the time-skipping test server."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from registration.domain.email_kinds import EmailKind
from registration.domain.failures import LINK_REPLACED, TEMPLATE_PROBLEM
from registration.domain.statuses import DeliveryStatus
from workflows.contracts import (
    ActivateUserInput,
    CreatePendingUserInput,
    DeliveryFailedInput,
    DeliveryFailedResult,
    EmailRetrySettings,
    ExpireUserInput,
    NewVerificationInput,
    RegistrationInput,
    RegistrationState,
    ResendPolicy,
    SendEmailInput,
    SendEmailResult,
)
from workflows.registration import RegistrationWorkflow
from workflows.signal_guard import SignalGuard

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
    # Sends of these deliveries fail transiently, however often they are tried.
    stuck_deliveries: set[str] = field(default_factory=set)
    # Kinds whose template is missing: the send reports a template problem.
    missing_templates: set[EmailKind] = field(default_factory=set)
    email_taken: bool = False
    created: list[CreatePendingUserInput] = field(default_factory=list)
    sent: list[tuple[EmailKind, int]] = field(default_factory=list)
    # (delivery id, the delivery whose link it carried) of every email sent
    links: list[tuple[str, str | None]] = field(default_factory=list)
    template_problems: int = 0
    new_verifications: list[NewVerificationInput] = field(default_factory=list)
    failed: list[DeliveryFailedInput] = field(default_factory=list)
    activated: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    # The link that works now, as the database would know it.
    live_link: str | None = None

    def all(self) -> list[object]:
        @activity.defn(name="create_pending_user")
        async def create_pending_user(input: CreatePendingUserInput) -> None:
            if self.email_taken:
                raise ApplicationError("taken", type="EmailAlreadyRegistered", non_retryable=True)
            self.created.append(input)
            self.live_link = input.verification_delivery_id

        @activity.defn(name="start_new_verification")
        async def start_new_verification(input: NewVerificationInput) -> None:
            self.new_verifications.append(input)
            self.live_link = input.delivery_id

        @activity.defn(name="send_email")
        async def send_email(input: SendEmailInput) -> SendEmailResult:
            attempt = activity.info().attempt
            if input.link_delivery_id is not None and input.link_delivery_id != self.live_link:
                raise ApplicationError("link replaced", type=LINK_REPLACED, non_retryable=True)
            if input.kind in self.missing_templates:
                self.template_problems += 1
                raise ApplicationError(
                    f"email template '{input.kind.value.lower()}.html': not found",
                    type=TEMPLATE_PROBLEM,
                    non_retryable=True,
                )
            if self.send_fails_permanently:
                raise ApplicationError("550 mailbox unavailable", non_retryable=True)
            if input.delivery_id in self.stuck_deliveries or (
                attempt <= self.send_failures and input.kind in self.failing_kinds
            ):
                raise ApplicationError(f"421 try again later (attempt {attempt})")
            self.sent.append((input.kind, attempt))
            self.links.append((input.delivery_id, input.link_delivery_id))
            return SendEmailResult(
                attempts=attempt, sent_at=datetime.now(UTC), message_id=f"<{input.delivery_id}@x>"
            )

        @activity.defn(name="record_delivery_failure")
        async def record_delivery_failure(input: DeliveryFailedInput) -> DeliveryFailedResult:
            self.failed.append(input)
            return DeliveryFailedResult(attempts=0)

        @activity.defn(name="activate_user")
        async def activate_user(input: ActivateUserInput) -> None:
            self.activated.append(input.registration_id)

        @activity.defn(name="expire_user")
        async def expire_user(input: ExpireUserInput) -> None:
            self.expired.append(input.registration_id)

        return [
            create_pending_user,
            start_new_verification,
            send_email,
            record_delivery_failure,
            activate_user,
            expire_user,
        ]


async def registration_input(
    env: WorkflowEnvironment,
    *,
    valid_for: timedelta = timedelta(hours=24),
    resend: ResendPolicy | None = None,
    remind_after: timedelta | None = None,
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
        resend=resend or ResendPolicy(),
        remind_at=None if remind_after is None else now + remind_after,
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
        self,
        valid_for: timedelta = timedelta(hours=24),
        *,
        resend: ResendPolicy | None = None,
        remind_after: timedelta | None = None,
    ) -> tuple[RegistrationInput, WorkflowHandle[RegistrationWorkflow, RegistrationState]]:
        input = await registration_input(
            self.env, valid_for=valid_for, resend=resend, remind_after=remind_after
        )
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


async def run_harness(time_skipping_env: WorkflowEnvironment) -> AsyncIterator[Harness]:
    fakes = FakeActivities()
    task_queue = f"test-{uuid.uuid4()}"  # a fresh queue: no test sees another's workflows
    async with Worker(
        time_skipping_env.client,
        task_queue=task_queue,
        workflows=[RegistrationWorkflow],
        activities=fakes.all(),
        # As the worker runs them: a signal whose arguments fit no handler is dropped.
        interceptors=[SignalGuard()],
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
