"""Resend, reminder and template waits of RegistrationWorkflow, on the time-skipping server:
cooldowns and deadlines of minutes and hours pass in milliseconds."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from registration.domain.email_kinds import EmailKind
from registration.domain.failures import (
    ALREADY_VERIFIED,
    REGISTRATION_NOT_FOUND,
    RESEND_COOLDOWN,
    RESEND_LIMIT,
)
from registration.domain.statuses import DeliveryStatus, RegistrationStatus
from tests.workflows.fakes import Harness, wait_for_sent
from workflows.contracts import (
    RegistrationInput,
    RegistrationState,
    ResendPolicy,
    ResendRequest,
    ResendResult,
    VerifyEmailRequest,
)
from workflows.registration import REPLACED_BY_RESEND, RegistrationWorkflow

Handle = WorkflowHandle[RegistrationWorkflow, RegistrationState]


async def resend(handle: Handle, input: RegistrationInput) -> ResendResult:
    result = await handle.execute_update(
        RegistrationWorkflow.resend_verification, ResendRequest(input.registration_id)
    )
    assert isinstance(result, ResendResult)
    return result


async def refusal(handle: Handle, registration_id: str) -> ApplicationError:
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await handle.execute_update(
            RegistrationWorkflow.resend_verification, ResendRequest(registration_id)
        )
    assert isinstance(caught.value.cause, ApplicationError)
    return caught.value.cause


async def wait_until(handle: Handle, done: object, *, what: str) -> RegistrationState:
    assert callable(done)
    for _ in range(200):
        state = await handle.query(RegistrationWorkflow.state)
        if done(state):
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


def verification_ids(state: RegistrationState) -> list[str]:
    return [d.delivery_id for d in state.deliveries if d.kind is EmailKind.VERIFICATION]


async def test_resend_waits_for_the_cooldown_and_then_sends_a_new_link(harness: Harness) -> None:
    fakes = harness.fakes
    input, handle = await harness.start(resend=ResendPolicy(cooldown_seconds=60, limit=5))
    await wait_for_sent(handle)

    early = await refusal(handle, input.registration_id)
    assert early.type == RESEND_COOLDOWN
    allowed_at = input.requested_at + timedelta(seconds=60)
    assert datetime.fromisoformat(str(early.details[0])) == allowed_at

    await harness.env.sleep(61)
    result = await resend(handle, input)
    assert result.resends_remaining == 4
    assert result.next_resend_allowed_at is not None
    assert result.next_resend_allowed_at > allowed_at

    state = await wait_until(
        handle,
        lambda s: all(d.status is DeliveryStatus.SENT for d in s.deliveries),
        what="both verification emails sent",
    )
    first, second = verification_ids(state)
    # The database was told first, so the old link stopped working before the new email left.
    assert [n.delivery_id for n in fakes.new_verifications] == [second]
    assert fakes.links == [(first, first), (second, second)]
    assert state.resends_remaining == 4
    # The deadline did not move.
    assert state.expires_at == input.expires_at


async def test_resends_stop_at_the_limit(harness: Harness) -> None:
    input, handle = await harness.start(resend=ResendPolicy(cooldown_seconds=1, limit=2))
    await wait_for_sent(handle)

    for remaining in (1, 0):
        await harness.env.sleep(2)
        assert (await resend(handle, input)).resends_remaining == remaining

    await harness.env.sleep(2)
    spent = await refusal(handle, input.registration_id)
    assert spent.type == RESEND_LIMIT
    state = await handle.query(RegistrationWorkflow.state)
    assert state.next_resend_allowed_at is None
    assert len(verification_ids(state)) == 3


async def test_a_resend_stops_the_email_still_being_retried(harness: Harness) -> None:
    fakes = harness.fakes
    input, handle = await harness.start(resend=ResendPolicy(cooldown_seconds=1, limit=5))
    first = f"{input.registration_id}.verification.1"
    fakes.stuck_deliveries.add(first)  # the relay keeps answering 421 to the first one
    await asyncio.sleep(0.3)

    await harness.env.sleep(2)
    await resend(handle, input)

    state = await wait_until(
        handle,
        lambda s: s.deliveries[-1].status is DeliveryStatus.SENT,
        what="the resent email sent",
    )
    old, new = state.deliveries
    assert old.status is DeliveryStatus.FAILED
    assert old.last_error == REPLACED_BY_RESEND
    assert [f.delivery_id for f in fakes.failed] == [first]
    assert fakes.links == [(new.delivery_id, new.delivery_id)]


async def test_no_resend_for_another_registration_nor_once_verified(harness: Harness) -> None:
    input, handle = await harness.start(resend=ResendPolicy(cooldown_seconds=1, limit=5))
    await wait_for_sent(handle)
    await harness.env.sleep(2)

    assert (await refusal(handle, "reg-someone-else")).type == REGISTRATION_NOT_FOUND

    await handle.execute_update(
        RegistrationWorkflow.verify_email, VerifyEmailRequest(input.registration_id)
    )
    assert (await refusal(handle, input.registration_id)).type == ALREADY_VERIFIED
    final = await handle.result()
    assert final.status is RegistrationStatus.ACTIVE
    assert final.resends_remaining == 0
    assert final.next_resend_allowed_at is None


async def test_an_unverified_registration_gets_one_reminder_with_the_current_link(
    harness: Harness,
) -> None:
    fakes = harness.fakes
    input, handle = await harness.start(
        timedelta(hours=24),
        resend=ResendPolicy(cooldown_seconds=60, limit=5),
        remind_after=timedelta(hours=12),
    )
    await wait_for_sent(handle)
    await harness.env.sleep(120)
    await resend(handle, input)

    final = await handle.result()

    assert final.status is RegistrationStatus.EXPIRED
    kinds = [(d.kind, d.status) for d in final.deliveries]
    assert kinds == [
        (EmailKind.VERIFICATION, DeliveryStatus.SENT),
        (EmailKind.VERIFICATION, DeliveryStatus.SENT),
        (EmailKind.REMINDER, DeliveryStatus.SENT),
    ]
    reminder = final.deliveries[2]
    assert reminder.created_at is not None
    assert reminder.created_at - input.requested_at >= timedelta(hours=12)
    # It carries the link of the resent email, the only one that still works.
    assert fakes.links[-1] == (reminder.delivery_id, final.deliveries[1].delivery_id)


async def test_no_reminder_once_verified(harness: Harness) -> None:
    fakes = harness.fakes
    input, handle = await harness.start(remind_after=timedelta(hours=12))
    await wait_for_sent(handle)
    await handle.execute_update(
        RegistrationWorkflow.verify_email, VerifyEmailRequest(input.registration_id)
    )

    final = await handle.result()

    assert [d.kind for d in final.deliveries] == [EmailKind.VERIFICATION, EmailKind.WELCOME]
    assert EmailKind.REMINDER not in [k for k, _ in fakes.sent]


async def test_a_missing_template_holds_the_welcome_email_until_it_is_back(
    harness: Harness,
) -> None:
    fakes = harness.fakes
    fakes.missing_templates.add(EmailKind.WELCOME)
    input, handle = await harness.start()
    await wait_for_sent(handle)

    verified = await handle.execute_update(
        RegistrationWorkflow.verify_email, VerifyEmailRequest(input.registration_id)
    )
    # Activation did not wait for the welcome email.
    assert verified.status is RegistrationStatus.ACTIVE

    state = await wait_until(handle, lambda s: fakes.template_problems >= 2, what="two tries")
    welcome = state.deliveries[-1]
    assert welcome.kind is EmailKind.WELCOME
    assert welcome.status is DeliveryStatus.PENDING
    assert "welcome.html" in (welcome.last_error or "")

    fakes.missing_templates.clear()  # the operator puts the template back
    final = await handle.result()
    assert final.deliveries[-1].status is DeliveryStatus.SENT
    assert fakes.failed == []
