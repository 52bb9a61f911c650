"""RegistrationWorkflow on the time-skipping test server, with activity doubles."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError

from registration.domain.email_kinds import EmailKind
from registration.domain.statuses import DeliveryStatus, RegistrationStatus
from tests.workflows.fakes import Harness, wait_for_sent
from workflows.contracts import VerifyEmailRequest
from workflows.registration import EXPIRED_BEFORE_SENT, STOPPED_VERIFIED, RegistrationWorkflow


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
    assert [c.registration_id for c in fakes.created] == [input.registration_id]
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


async def test_a_verify_signal_verifies_nothing(harness: Harness) -> None:
    # Anyone who can reach Temporal can send a signal: it proves nothing.
    fakes = harness.fakes
    input, handle = await harness.start()
    await wait_for_sent(handle)

    await handle.signal(RegistrationWorkflow.verify)
    await handle.signal("verify", args=["with", "arguments"])  # taken and ignored
    # The run's own start input, sent back as the update's argument: its fields hold the
    # registration id, but it is no VerifyEmailRequest.
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update("verify_email", input)
    await harness.env.sleep(1)
    state = await handle.query(RegistrationWorkflow.state)
    assert state.status is RegistrationStatus.PENDING_VERIFICATION
    assert fakes.activated == []
    result = await handle.execute_update(
        RegistrationWorkflow.verify_email, VerifyEmailRequest(input.registration_id)
    )
    assert result.status is RegistrationStatus.ACTIVE and not result.already_verified
    assert (await handle.result()).status is RegistrationStatus.ACTIVE


async def test_email_taken_by_another_registration_ends_without_sending(
    harness: Harness,
) -> None:
    fakes = harness.fakes
    fakes.email_taken = True
    _, handle = await harness.start()

    with pytest.raises(WorkflowFailureError):
        await handle.result()
    assert fakes.sent == []


async def test_verification_still_retrying_is_stopped_once_verified(harness: Harness) -> None:
    fakes = harness.fakes
    fakes.send_failures = 10_000  # the relay keeps answering 421 to the verification email
    fakes.failing_kinds = frozenset({EmailKind.VERIFICATION})
    input, handle = await harness.start()
    await asyncio.sleep(0.5)  # a few attempts fail meanwhile

    await handle.execute_update(
        RegistrationWorkflow.verify_email, VerifyEmailRequest(input.registration_id)
    )
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
