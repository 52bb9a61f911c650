"""PasswordResetWorkflow on the time-skipping server, with activity doubles: a link that works
once, until its deadline; nothing sent without an active account; a repeated request sends the
same link again within the cooldown and limit."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from temporalio import activity
from temporalio.client import WorkflowHandle, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from registration.domain.email_kinds import EmailKind
from registration.domain.failures import LINK_REPLACED, RESET_EXPIRED, RESET_NOT_FOUND, RESET_USED
from registration.domain.statuses import DeliveryStatus, PasswordResetStatus
from tests.workflows.conftest import time_skipping_environment
from tests.workflows.fakes import FAST_RETRY
from workflows.account_email import AccountEmailWorkflow, account_email_workflow_id
from workflows.contracts import (
    CompleteResetInput,
    DeliveryFailedInput,
    DeliveryFailedResult,
    ExpireResetInput,
    LinkPurpose,
    OpenResetInput,
    OpenResetResult,
    PasswordResetInput,
    PasswordResetState,
    ResendPolicy,
    ResetPasswordRequest,
    ResetRequested,
    SendEmailInput,
    SendEmailResult,
)
from workflows.password_reset import REQUESTED_SIGNAL, STOPPED_USED, PasswordResetWorkflow
from workflows.signal_guard import SignalGuard

Handle = WorkflowHandle[PasswordResetWorkflow, PasswordResetState]
NEW_HASH = "$argon2id$v=19$m=19456,t=2,p=1$bmV3$aGFzaA"


@dataclass
class ResetFakes:
    """Stand-ins for the reset's activities, keeping what the workflow asked of them."""

    account: str | None = "reg-1"
    # Sends of these kinds fail transiently, however often they are tried.
    stuck_kinds: set[EmailKind] = field(default_factory=set)
    # complete_password_reset fails for good (an invariant broken), this many times.
    completion_failures: int = 0
    # expire_password_reset waits for this before it returns, when set.
    hold_expiry: asyncio.Event | None = None
    expiry_started: asyncio.Event = field(default_factory=asyncio.Event)
    opened: list[OpenResetInput] = field(default_factory=list)
    completed: list[CompleteResetInput] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    sent: list[SendEmailInput] = field(default_factory=list)
    failed: list[DeliveryFailedInput] = field(default_factory=list)
    used: bool = False

    def all(self) -> list[object]:
        @activity.defn(name="open_password_reset")
        async def open_password_reset(input: OpenResetInput) -> OpenResetResult:
            self.opened.append(input)
            return OpenResetResult(registration_id=self.account)

        @activity.defn(name="complete_password_reset")
        async def complete_password_reset(input: CompleteResetInput) -> None:
            if self.completion_failures > 0:
                self.completion_failures -= 1
                raise ApplicationError("no such reset", non_retryable=True)
            self.completed.append(input)
            self.used = True

        @activity.defn(name="expire_password_reset")
        async def expire_password_reset(input: ExpireResetInput) -> None:
            self.expiry_started.set()
            if self.hold_expiry is not None:
                await self.hold_expiry.wait()
            self.expired.append(input.reset_id)

        @activity.defn(name="send_email")
        async def send_email(input: SendEmailInput) -> SendEmailResult:
            if input.link_delivery_id is not None and self.used:
                raise ApplicationError("used", type=LINK_REPLACED, non_retryable=True)
            if input.kind in self.stuck_kinds:
                raise ApplicationError("421 try again later")
            self.sent.append(input)
            return SendEmailResult(attempts=1, sent_at=datetime.now(UTC))

        @activity.defn(name="record_delivery_failure")
        async def record_delivery_failure(input: DeliveryFailedInput) -> DeliveryFailedResult:
            self.failed.append(input)
            return DeliveryFailedResult(attempts=0)

        return [
            open_password_reset,
            complete_password_reset,
            expire_password_reset,
            send_email,
            record_delivery_failure,
        ]


@dataclass
class ResetHarness:
    env: WorkflowEnvironment
    task_queue: str
    fakes: ResetFakes
    started: list[Handle] = field(default_factory=list)

    async def start(
        self, *, valid_for: timedelta = timedelta(hours=1), resend: ResendPolicy | None = None
    ) -> tuple[PasswordResetInput, Handle]:
        now = await self.env.get_current_time()
        input = PasswordResetInput(
            reset_id=f"rst-{uuid.uuid4().hex}",
            email="ann@example.com",
            email_key="k" * 26,
            requested_at=now,
            expires_at=now + valid_for,
            email_retry=FAST_RETRY,
            resend=resend or ResendPolicy(cooldown_seconds=60, limit=2),
        )
        handle = await self.env.client.start_workflow(
            PasswordResetWorkflow.run,
            input,
            id=f"wf-{input.reset_id}",
            task_queue=self.task_queue,
            start_signal=REQUESTED_SIGNAL,
            start_signal_args=[requested(input, now)],
        )
        self.started.append(handle)
        return input, handle


@pytest.fixture
async def own_time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A test server of this test's own. The test server keeps time skipping locked after a
    child workflow has run (temporalio/sdk-java#1618, sdk-typescript#1101), and a used reset
    starts one: on a shared server every later test's timers would wait in real time."""
    async for env in time_skipping_environment():
        yield env


@pytest.fixture
async def reset_harness(
    own_time_skipping_env: WorkflowEnvironment,
) -> AsyncIterator[ResetHarness]:
    time_skipping_env = own_time_skipping_env
    fakes = ResetFakes()
    task_queue = f"test-{uuid.uuid4()}"
    async with Worker(
        time_skipping_env.client,
        task_queue=task_queue,
        workflows=[PasswordResetWorkflow, AccountEmailWorkflow],
        activities=fakes.all(),
        # As the worker runs them: a signal whose arguments fit no handler is dropped.
        interceptors=[SignalGuard()],
    ):
        harness = ResetHarness(time_skipping_env, task_queue, fakes)
        try:
            yield harness
        finally:
            # By ID, not run: a reset that continued as new has a later run to end. A
            # workflow left open would hold time skipping for every later test.
            client = time_skipping_env.client
            for handle in harness.started:
                latest = client.get_workflow_handle_for(PasswordResetWorkflow.run, handle.id)
                with contextlib.suppress(RPCError, WorkflowQueryFailedError):
                    # The "password changed" emails' own workflows, abandoned by design.
                    state = await latest.query(PasswordResetWorkflow.state)
                    for delivery in state.deliveries:
                        if delivery.kind is EmailKind.PASSWORD_CHANGED:
                            child = account_email_workflow_id(delivery.delivery_id)
                            with contextlib.suppress(RPCError):
                                await client.get_workflow_handle(child).terminate("test over")
                with contextlib.suppress(RPCError):
                    await latest.terminate("test over")


async def state_when(handle: Handle, done: object, *, what: str) -> PasswordResetState:
    assert callable(done)
    for _ in range(200):
        state = await handle.query(PasswordResetWorkflow.state)
        if done(state):
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


def reset_emails_sent(state: PasswordResetState) -> list[str]:
    return [
        d.delivery_id
        for d in state.deliveries
        if d.kind is EmailKind.PASSWORD_RESET and d.status is DeliveryStatus.SENT
    ]


async def use(handle: Handle, reset_id: str) -> None:
    await handle.execute_update(
        PasswordResetWorkflow.reset_password, ResetPasswordRequest(reset_id, NEW_HASH)
    )


async def refusal(handle: Handle, reset_id: str) -> ApplicationError:
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await use(handle, reset_id)
    assert isinstance(caught.value.cause, ApplicationError)
    return caught.value.cause


async def test_a_used_link_changes_the_password_once_and_tells_the_owner(
    reset_harness: ResetHarness,
) -> None:
    fakes = reset_harness.fakes
    input, handle = await reset_harness.start()
    await state_when(handle, reset_emails_sent, what="the reset email sent")

    await use(handle, input.reset_id)
    assert [c.password_hash for c in fakes.completed] == [NEW_HASH]
    assert fakes.completed[0].email_key == input.email_key

    again = await refusal(handle, input.reset_id)
    assert again.type == RESET_USED

    result = await handle.result()
    assert result.status is PasswordResetStatus.USED
    [reset_email, changed_email] = result.deliveries
    assert (reset_email.kind, reset_email.status) == (
        EmailKind.PASSWORD_RESET,
        DeliveryStatus.SENT,
    )
    # "Your password was changed" is sent by a workflow of its own.
    assert changed_email.kind is EmailKind.PASSWORD_CHANGED
    child = reset_harness.env.client.get_workflow_handle_for(
        AccountEmailWorkflow.run, account_email_workflow_id(changed_email.delivery_id)
    )
    assert (await child.result()).status is DeliveryStatus.SENT
    [link_email, changed] = fakes.sent
    assert link_email.link_purpose is LinkPurpose.RESET_PASSWORD
    assert link_email.link_delivery_id == fakes.opened[0].delivery_id
    assert changed.link_delivery_id is None
    assert len(fakes.completed) == 1 and fakes.expired == []


async def test_the_link_expires_unused_and_is_refused_after_the_deadline(
    reset_harness: ResetHarness,
) -> None:
    fakes = reset_harness.fakes
    input, handle = await reset_harness.start(valid_for=timedelta(hours=1))
    await state_when(handle, reset_emails_sent, what="the reset email sent")

    await reset_harness.env.sleep(timedelta(minutes=59))
    assert (await handle.query(PasswordResetWorkflow.state)).status is (PasswordResetStatus.PENDING)
    result = await handle.result()  # the hour passes in an instant
    assert result.status is PasswordResetStatus.EXPIRED
    assert fakes.expired == [input.reset_id]
    assert fakes.completed == []
    with pytest.raises(RPCError):
        await use(handle, input.reset_id)  # the workflow has closed


async def test_an_update_in_the_last_moment_before_the_deadline_still_works(
    reset_harness: ResetHarness,
) -> None:
    input, handle = await reset_harness.start(valid_for=timedelta(minutes=10))
    await state_when(handle, reset_emails_sent, what="the reset email sent")
    await reset_harness.env.sleep(timedelta(minutes=9, seconds=59))
    await use(handle, input.reset_id)
    assert (await handle.result()).status is PasswordResetStatus.USED


async def test_without_an_active_account_nothing_is_sent(reset_harness: ResetHarness) -> None:
    fakes = reset_harness.fakes
    fakes.account = None
    input, handle = await reset_harness.start()
    result = await handle.result()
    assert result.status is PasswordResetStatus.NO_ACCOUNT
    assert result.deliveries == [] and fakes.sent == []
    assert fakes.opened[0].email == input.email


def requested(input: PasswordResetInput, at: datetime) -> ResetRequested:
    """A request as the server signals it: with its proof."""
    return ResetRequested(email_key=input.email_key, requested_at=at)


async def request_again(harness: ResetHarness, handle: Handle, input: PasswordResetInput) -> None:
    await handle.signal(REQUESTED_SIGNAL, requested(input, await harness.env.get_current_time()))


async def test_a_request_without_its_proof_sends_nothing(reset_harness: ResetHarness) -> None:
    fakes = reset_harness.fakes
    input, handle = await reset_harness.start(resend=ResendPolicy(cooldown_seconds=60, limit=3))
    await state_when(handle, reset_emails_sent, what="the reset email sent")
    await reset_harness.env.sleep(61)

    await handle.signal(REQUESTED_SIGNAL)  # as anyone with Temporal access can send it
    await handle.signal(REQUESTED_SIGNAL, ResetRequested(email_key="x" * 26))  # another address's
    # A genuine request of earlier, sent again (it lies in the history): from before this run.
    await handle.signal(REQUESTED_SIGNAL, requested(input, input.requested_at - timedelta(hours=1)))
    # Malformed: the handler takes and ignores what it cannot use, and the run goes on.
    await handle.signal(REQUESTED_SIGNAL, args=["one", "two"])
    await reset_harness.env.sleep(1)
    assert len(reset_emails_sent(await handle.query(PasswordResetWorkflow.state))) == 1
    await request_again(reset_harness, handle, input)
    await state_when(
        handle, lambda s: len(reset_emails_sent(s)) == 2, what="the email a proven request sends"
    )
    assert len(fakes.sent) == 2


async def test_a_repeated_request_resends_the_same_link_within_cooldown_and_limit(
    reset_harness: ResetHarness,
) -> None:
    fakes = reset_harness.fakes
    input, handle = await reset_harness.start(resend=ResendPolicy(cooldown_seconds=60, limit=1))
    await state_when(handle, reset_emails_sent, what="the reset email sent")

    await request_again(reset_harness, handle, input)  # within the cooldown: nothing
    await reset_harness.env.sleep(1)
    assert len(reset_emails_sent(await handle.query(PasswordResetWorkflow.state))) == 1
    assert len(fakes.sent) == 1
    await reset_harness.env.sleep(60)
    await request_again(reset_harness, handle, input)  # past it: the same link once more
    state = await state_when(
        handle, lambda s: len(reset_emails_sent(s)) == 2, what="a second reset email"
    )
    await reset_harness.env.sleep(61)
    await request_again(reset_harness, handle, input)  # the limit (one) is spent
    await reset_harness.env.sleep(1)
    state = await handle.query(PasswordResetWorkflow.state)
    assert len(reset_emails_sent(state)) == 2
    assert {s.link_delivery_id for s in fakes.sent} == {fakes.opened[0].delivery_id}

    await use(handle, input.reset_id)
    assert (await handle.result()).status is PasswordResetStatus.USED


async def test_using_the_link_stops_an_email_still_being_retried(
    reset_harness: ResetHarness,
) -> None:
    fakes = reset_harness.fakes
    fakes.stuck_kinds = {EmailKind.PASSWORD_RESET}
    input, handle = await reset_harness.start()
    await reset_harness.env.sleep(5)  # a few attempts fail meanwhile
    await use(handle, input.reset_id)
    result = await handle.result()
    first = result.deliveries[0]
    assert first.status is DeliveryStatus.FAILED
    assert first.last_error == STOPPED_USED
    assert [f.error for f in fakes.failed] == [STOPPED_USED]


async def test_an_update_for_another_reset_is_refused(reset_harness: ResetHarness) -> None:
    fakes = reset_harness.fakes
    input, handle = await reset_harness.start()
    await state_when(handle, reset_emails_sent, what="the reset email sent")
    other = await refusal(handle, "rst-someone-else")
    assert other.type == RESET_NOT_FOUND
    assert fakes.completed == []
    await use(handle, input.reset_id)
    assert (await handle.result()).status is PasswordResetStatus.USED


async def closing_at_the_deadline(harness: ResetHarness) -> tuple[PasswordResetInput, Handle]:
    """A reset valid for 10 minutes, its link sent, now past its deadline and held in the
    middle of expiring (until `fakes.hold_expiry` is set). The test server cannot skip time
    past a running activity, so time stops at the deadline."""
    harness.fakes.hold_expiry = asyncio.Event()
    input, handle = await harness.start(valid_for=timedelta(minutes=10))
    await state_when(handle, reset_emails_sent, what="the reset email sent")
    await harness.env.sleep(timedelta(minutes=10))
    await asyncio.wait_for(harness.fakes.expiry_started.wait(), timeout=30)
    return input, handle


async def test_an_update_after_the_deadline_is_refused_while_the_reset_closes(
    reset_harness: ResetHarness,
) -> None:
    fakes = reset_harness.fakes
    input, handle = await closing_at_the_deadline(reset_harness)
    late = await refusal(handle, input.reset_id)
    assert late.type == RESET_EXPIRED
    assert fakes.hold_expiry is not None
    fakes.hold_expiry.set()
    assert (await handle.result()).status is PasswordResetStatus.EXPIRED
    assert fakes.completed == []


async def test_a_request_while_the_reset_closes_starts_a_new_reset(
    reset_harness: ResetHarness,
) -> None:
    fakes = reset_harness.fakes
    input, handle = await closing_at_the_deadline(reset_harness)
    await request_again(reset_harness, handle, input)
    assert fakes.hold_expiry is not None
    fakes.hold_expiry.set()

    # The workflow carries on as a new run: a new reset with a new link, never dropped.
    for _ in range(200):
        if len(fakes.opened) == 2:
            break
        await asyncio.sleep(0.05)
    first, second = fakes.opened
    assert second.reset_id != first.reset_id
    assert second.reset_id.rsplit("_", 1)[0] == input.reset_id.rsplit("_", 1)[0]
    assert second.expires_at - second.created_at == timedelta(minutes=10)
    latest = reset_harness.env.client.get_workflow_handle_for(PasswordResetWorkflow.run, handle.id)
    state = await state_when(latest, reset_emails_sent, what="the new reset email sent")
    assert state.reset_id == second.reset_id
    await use(latest, second.reset_id)
    assert (await latest.result()).status is PasswordResetStatus.USED


async def test_a_failed_completion_leaves_the_link_working(reset_harness: ResetHarness) -> None:
    fakes = reset_harness.fakes
    fakes.completion_failures = 1
    input, handle = await reset_harness.start()
    await state_when(handle, reset_emails_sent, what="the reset email sent")
    with pytest.raises(WorkflowUpdateFailedError):
        await use(handle, input.reset_id)
    assert (await handle.query(PasswordResetWorkflow.state)).status is (PasswordResetStatus.PENDING)
    await use(handle, input.reset_id)  # the same link, once more: it works
    assert (await handle.result()).status is PasswordResetStatus.USED
    assert len(fakes.completed) == 1
