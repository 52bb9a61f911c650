"""The one way activities send email: every message has a delivery record, updated on every
attempt, and a repeated attempt of a delivery already sent sends nothing.

A send attempt: look at the record (ended? done), build the email (a template problem is
kept on the record and reported, never dropped), count the attempt, talk to the relay, and
record the outcome. Failures come out classified, transient or permanent (email_failures).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.database_calls import run_db
from activities.email_failures import smtp_failure
from registration.adapters.db.deliveries import DeliveryRepository
from registration.adapters.email.messages import OutgoingEmail, message_id_for
from registration.adapters.email.rendering import Subject, TemplateProblem, TemplateRenderer
from registration.adapters.email.smtp import MailSender
from registration.domain.clock import utcnow
from registration.domain.email_kinds import EmailKind
from registration.domain.failures import TEMPLATE_PROBLEM
from registration.domain.records import DeliveryOwner, DeliveryRecord
from registration.domain.statuses import DeliveryStatus
from workflows.contracts import SendEmailResult


class RecordedMailer:
    """Built once per worker and shared by the activity classes that send email."""

    def __init__(
        self,
        *,
        deliveries: DeliveryRepository,
        renderer: TemplateRenderer,
        sender: MailSender,
        from_email: str,
    ) -> None:
        self._deliveries = deliveries
        self._renderer = renderer
        self._sender = sender
        self._from_email = from_email

    async def send(
        self,
        *,
        delivery_id: str,
        owner: DeliveryOwner,
        kind: EmailKind,
        recipient: str,
        context: Callable[[], Awaitable[dict[str, Any]]],
        subject: Subject | None = None,
        sender: tuple[str, str] | None = None,
    ) -> SendEmailResult:
        """One attempt of a recorded delivery. `context` gives the template's values; it may
        refuse (raise) when the email has become pointless, like a link that no longer works."""
        delivery = await run_db(
            self._deliveries.open_delivery,
            delivery_id=delivery_id,
            owner=owner,
            kind=kind,
            now=utcnow(),
        )
        if (ended := _outcome_if_ended(delivery)) is not None:
            return ended

        message_id = message_id_for(delivery_id, self._from_email)
        email = await self.render(
            delivery_id,
            kind,
            recipient=recipient,
            message_id=message_id,
            subject=subject,
            sender=sender,
            context=await context(),
        )
        counted = await run_db(
            self._deliveries.count_attempt,
            delivery_id=delivery_id,
            message_id=message_id,
            now=utcnow(),
        )
        # Ended since the first look: an attempt beside this one (a timed-out one still
        # running) sent it, the budget ran out, or the owner closed it meanwhile.
        if (ended := _outcome_if_ended(counted)) is not None:
            return ended
        try:
            await self.deliver(email)
        except ApplicationError as failure:
            await run_db(
                self._deliveries.record_delivery_error,
                delivery_id=delivery_id,
                error=failure.message,
                now=utcnow(),
            )
            raise
        sent = await run_db(
            self._deliveries.mark_delivery_sent, delivery_id=delivery_id, sent_at=utcnow()
        )
        activity.logger.info(
            "sent %s email for delivery %s",
            kind.value,
            delivery_id,
            extra={"registration_id": owner.registration_id},
        )
        if sent.sent_at is None:
            raise ApplicationError("delivery ended while sending", non_retryable=True)
        return SendEmailResult(sent.attempts, sent.sent_at, sent.message_id)

    async def send_unrecorded(self, *, notice_id: str, kind: EmailKind, recipient: str) -> None:
        """An email that belongs to nothing the client knows (no delivery record)."""
        message_id = message_id_for(notice_id, self._from_email)
        email = await self.render(
            notice_id, kind, recipient=recipient, message_id=message_id, context={}
        )
        await self.deliver(email)
        activity.logger.info("sent %s notice %s", kind.value, notice_id)

    async def render(
        self,
        delivery_id: str,
        kind: EmailKind,
        *,
        recipient: str,
        message_id: str,
        context: dict[str, Any],
        subject: Subject | None = None,
        sender: tuple[str, str] | None = None,
    ) -> OutgoingEmail:
        """The rendered email; a template problem is logged, kept on the delivery record, and
        reported to the workflow, which tries again later: the email is never dropped."""
        try:
            return self._renderer.render(
                kind,
                recipient=recipient,
                message_id=message_id,
                subject=subject,
                sender=sender,
                **context,
            )
        except TemplateProblem as problem:
            activity.logger.error("delivery %s waits for its template: %s", delivery_id, problem)
            await run_db(
                self._deliveries.record_delivery_error,
                delivery_id=delivery_id,
                error=str(problem),
                now=utcnow(),
            )
            raise ApplicationError(
                str(problem), type=TEMPLATE_PROBLEM, non_retryable=True
            ) from None

    async def deliver(self, email: OutgoingEmail) -> None:
        """Send, heartbeating so that a cancellation reaches a long SMTP exchange; a failure
        comes out classified (permanent or transient) and without the recipient's address."""
        try:
            async with heartbeating():
                await self._sender.send(email)
        except Exception as err:
            # `from None`: the original exception's text may name the recipient.
            raise smtp_failure(err, email.recipient) from None


@contextlib.asynccontextmanager
async def heartbeating(every: float = 5.0) -> AsyncIterator[None]:
    """Heartbeat every `every` seconds while the body runs. Not at once: a send is over in
    milliseconds as a rule, and each heartbeat is a write on the Temporal server; a send that
    hangs still beats, well within SEND_HEARTBEAT_TIMEOUT, so a cancellation reaches it."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(every)
            activity.heartbeat()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()


def _outcome_if_ended(delivery: DeliveryRecord) -> SendEmailResult | None:
    """None while the delivery is PENDING; once SENT, what that attempt sent (its completion
    may never have reached Temporal); once FAILED, a non-retryable error."""
    if delivery.status is DeliveryStatus.SENT and delivery.sent_at is not None:
        return SendEmailResult(delivery.attempts, delivery.sent_at, delivery.message_id)
    if delivery.status is not DeliveryStatus.PENDING:
        raise ApplicationError("delivery has already ended", non_retryable=True)
    return None
