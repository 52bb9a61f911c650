"""The emails of one workflow: their delivery records in the workflow's state, sends in the
background, and the stopping of emails whose link no longer has a use.

Used by the registration and the password reset workflows alike (deterministic code only).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from registration.domain.email_kinds import EmailKind
    from registration.domain.statuses import DeliveryStatus
    from workflows.activity_interfaces import record_delivery_failure, send_email
    from workflows.contracts import (
        DeliveryFailedInput,
        DeliveryState,
        EmailRetrySettings,
        LinkPurpose,
        SendEmailInput,
    )
    from workflows.database_steps import database_step
    from workflows.email_sending import (
        email_activity_options,
        failure_reason,
        record_sent,
        send_once_rendered,
    )


@dataclass
class _LinkSend:
    """An email carrying a link (verification, reminder, password reset), being sent."""

    delivery: DeliveryState
    task: asyncio.Task[None]


class Outbox:
    """Appends to `deliveries` (a list in the workflow's state), so that the state query
    shows every email with its progress."""

    def __init__(
        self,
        *,
        deliveries: list[DeliveryState],
        id_prefix: str,
        recipient: str,
        expires_at: datetime,
        retry: EmailRetrySettings,
        task_queue: str | None,
        link_purpose: LinkPurpose,
        registration_id: str | None = None,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        """`on_change` is called whenever a delivery's status has changed."""
        self.deliveries = deliveries
        self._on_change = on_change
        self.registration_id = registration_id
        self._id_prefix = id_prefix
        self._recipient = recipient
        self._expires_at = expires_at
        self._retry = retry
        self._task_queue = task_queue
        self._link_purpose = link_purpose
        self._link_sends: list[_LinkSend] = []
        self._stopping: set[str] = set()

    def next_delivery_id(self, kind: EmailKind) -> str:
        number = 1 + sum(1 for d in self.deliveries if d.kind is kind)
        return f"{self._id_prefix}.{kind.value.lower()}.{number}"

    def add(self, kind: EmailKind, created_at: datetime) -> DeliveryState:
        delivery = DeliveryState(
            delivery_id=self.next_delivery_id(kind), kind=kind, created_at=created_at
        )
        self.deliveries.append(delivery)
        return delivery

    def start_link_send(self, delivery: DeliveryState, *, link: DeliveryState) -> None:
        """Send an email carrying the link of `link`'s token, in the background."""
        task = asyncio.create_task(self.send(delivery, link=link.delivery_id))
        self._link_sends.append(_LinkSend(delivery, task))

    def link_send_in_progress(self) -> bool:
        return any(not send.task.done() for send in self._link_sends)

    async def stop_link_sends(self, reason: str) -> None:
        """Stop every link email still being sent, once its attempt in progress has ended,
        and record why each one that was not sent ends FAILED."""
        stopping, self._link_sends = self._link_sends, []
        for send in stopping:
            if not send.task.done():
                self._stopping.add(send.delivery.delivery_id)
                send.task.cancel()
        for send in stopping:
            with contextlib.suppress(asyncio.CancelledError):
                await send.task
        for send in stopping:
            if send.delivery.status is DeliveryStatus.PENDING:
                await self.record_failure(send.delivery, reason)

    async def send(self, delivery: DeliveryState, *, link: str | None = None) -> None:
        """Send and wait: retried as the settings say; a failure is recorded, not raised."""
        request = SendEmailInput(
            delivery_id=delivery.delivery_id,
            registration_id=self._registration_id(),
            kind=delivery.kind,
            recipient=self._recipient,
            expires_at=self._expires_at,
            link_delivery_id=link,
            link_purpose=self._link_purpose,
        )

        def waiting_for_template(reason: str) -> None:
            delivery.last_error = reason

        try:
            result = await send_once_rendered(
                lambda: workflow.execute_activity(
                    send_email,
                    request,
                    **email_activity_options(self._retry, self._task_queue),
                ),
                self._retry,
                waiting_for_template,
            )
        except ActivityError as err:
            if delivery.delivery_id in self._stopping:
                return  # cancelled by stop_link_sends, which records why
            await self.record_failure(delivery, failure_reason(err))
            return
        record_sent(delivery, result)
        self._on_change()

    def _registration_id(self) -> str:
        # Every email of these workflows belongs to an account, known before the first send.
        if self.registration_id is None:
            raise RuntimeError("no registration to send for")
        return self.registration_id

    async def record_failure(self, delivery: DeliveryState, reason: str) -> None:
        # FAILED only once the database says so: a write cut short (stop_link_sends cancels
        # the send it belongs to) leaves the delivery PENDING, and stop_link_sends records it.
        recorded = await database_step(
            record_delivery_failure,
            DeliveryFailedInput(
                delivery_id=delivery.delivery_id,
                registration_id=self._registration_id(),
                kind=delivery.kind,
                error=reason,
            ),
        )
        delivery.status = DeliveryStatus.FAILED
        delivery.last_error = reason
        delivery.attempts = recorded.attempts
        self._on_change()
