"""PasswordResetWorkflow: one forgot-password request, from the email with a single-use link to
the new password or the link's expiry (OWASP's forgot-password rules).

Every request starts or joins the workflow of its address (signal-with-start), whether the
address has an account or not, so that the answer to RequestPasswordReset takes the same work
and time either way; the workflow finds out, and without an active account it ends at once and
sends nothing. Deterministic code only: every side effect is an activity.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError, FailureError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from registration.domain.email_kinds import EmailKind
    from registration.domain.failures import RESET_EXPIRED, RESET_NOT_FOUND, RESET_USED
    from registration.domain.statuses import PasswordResetStatus
    from workflows.account_email import AccountEmailWorkflow, account_email_workflow_id
    from workflows.activity_interfaces import (
        complete_password_reset,
        expire_password_reset,
        open_password_reset,
    )
    from workflows.contracts import (
        SIGNALS_CARRY_PROOF,
        AccountEmailInput,
        CompleteResetInput,
        DeliveryState,
        ExpireResetInput,
        LinkPurpose,
        OpenResetInput,
        PasswordResetInput,
        PasswordResetState,
        ResetPasswordRequest,
        ResetRequested,
    )
    from workflows.database_steps import database_step
    from workflows.outbox import Outbox
    from workflows.search_attributes import EMAIL_DELIVERY_STATUS

# The signal every RequestPasswordReset sends (with the start, or to the running workflow).
REQUESTED_SIGNAL = "requested"
# How far the server's clock may run behind Temporal's when it signs a request.
REQUEST_CLOCK_SKEW = timedelta(minutes=1)
STOPPED_USED = "stopped: the password was reset before this email was confirmed sent"
# The patch after which a request arriving with the deadline is served by a new reset.
REQUEST_AT_THE_DEADLINE = "request-at-the-deadline-starts-a-new-reset"
STOPPED_EXPIRED = "stopped: the link expired before this email was confirmed sent"


@workflow.defn
class PasswordResetWorkflow:
    @workflow.init
    def __init__(self, input: PasswordResetInput) -> None:
        self._input = input
        self._state = PasswordResetState(
            reset_id=input.reset_id,
            status=PasswordResetStatus.PENDING,
            expires_at=input.expires_at,
        )
        self._outbox = Outbox(
            deliveries=self._state.deliveries,
            id_prefix=input.reset_id,
            recipient=input.email,
            expires_at=input.expires_at,
            retry=input.email_retry,
            task_queue=input.email_task_queue,
            link_purpose=LinkPurpose.RESET_PASSWORD,
            on_change=self._publish,
        )
        self._link: DeliveryState | None = None
        self._requests = 0
        self._answered_requests = 0
        self._resends = 0
        self._reset_requested = False
        self._closing = False

    @workflow.run
    async def run(self, input: PasswordResetInput) -> PasswordResetState:
        opened = await database_step(
            open_password_reset,
            OpenResetInput(
                reset_id=input.reset_id,
                email=input.email,
                delivery_id=self._outbox.next_delivery_id(EmailKind.PASSWORD_RESET),
                created_at=input.requested_at,
                expires_at=input.expires_at,
            ),
        )
        if opened.registration_id is None:
            self._state.status = PasswordResetStatus.NO_ACCOUNT
            return self._state
        self._state.registration_id = self._outbox.registration_id = opened.registration_id
        self._link = self._outbox.add(EmailKind.PASSWORD_RESET, input.requested_at)
        self._outbox.start_link_send(self._link, link=self._link)
        self._publish()
        # The request that started the workflow is answered by that first email.
        self._answered_requests = max(self._requests, 1)

        while not self._used():
            remaining = (input.expires_at - workflow.now()).total_seconds()
            try:
                await workflow.wait_condition(
                    lambda: self._used() or self._requests > self._answered_requests,
                    timeout=timedelta(seconds=max(0.0, remaining)),
                )
            except TimeoutError:
                break
            if self._used():
                break
            if workflow.now() >= input.expires_at and workflow.patched(REQUEST_AT_THE_DEADLINE):
                # A request that came with the deadline is left to a new reset (below): an
                # email now would carry a link that is about to stop working.
                break
            self._answered_requests = self._requests
            self._send_again()
        # From here no reset is accepted (see the validator); one accepted before the
        # deadline finishes first and wins, even when the timer fired in the same task.
        self._closing = True
        await workflow.wait_condition(lambda: self._used() or not self._reset_requested)
        if self._used():
            await self._outbox.stop_link_sends(STOPPED_USED)
            await self._tell_owner_of_the_change()
        else:
            await self._outbox.stop_link_sends(STOPPED_EXPIRED)
            await database_step(
                expire_password_reset,
                ExpireResetInput(reset_id=input.reset_id),
            )
            self._state.status = PasswordResetStatus.EXPIRED

        await workflow.wait_condition(workflow.all_handlers_finished)
        if self._requests > self._answered_requests:
            # Asked again while this reset was closing: the request is served by a new
            # reset (a new link), never dropped.
            workflow.continue_as_new(self._next_reset())
        return self._state

    @workflow.signal(name=REQUESTED_SIGNAL)
    def requested(self, request: ResetRequested | None = None) -> None:
        # Runs that began before signals carried proof replay as they ran, and keep counting
        # any request until they end. (Arguments that fit no parameter: signal_guard.)
        if workflow.patched(SIGNALS_CARRY_PROOF) and not self._proven(request):
            workflow.logger.warning("a reset request without proof ignored")
            return
        self._requests += 1

    def _proven(self, request: object) -> bool:
        """A request the server made for this address, since this run began."""
        if not isinstance(request, ResetRequested) or request.email_key != self._input.email_key:
            return False
        started = workflow.info().workflow_start_time - REQUEST_CLOCK_SKEW
        return request.requested_at is not None and request.requested_at >= started

    @workflow.update(name="reset_password")
    async def reset_password(self, request: ResetPasswordRequest) -> None:
        """Serves ResetPassword: answers once the new hash is in the database."""
        self._reset_requested = True
        used_at = workflow.now()
        try:
            await database_step(
                complete_password_reset,
                CompleteResetInput(
                    reset_id=self._input.reset_id,
                    password_hash=request.password_hash,
                    email_key=self._input.email_key,
                    used_at=used_at,
                ),
            )
        except FailureError:
            # Nothing was changed (the activity's one transaction): the link still works.
            # (An ActivityError from an ordinary activity, in runs from before the local
            # database steps; the ApplicationError itself from a local one.)
            self._reset_requested = False
            raise
        self._state.status = PasswordResetStatus.USED
        self._state.used_at = used_at

    @reset_password.validator
    def _validate_reset_password(self, request: ResetPasswordRequest) -> None:
        # Rejected updates leave no trace in history.
        if request.reset_id != self._input.reset_id or self._link is None:
            raise ApplicationError("no such password reset", type=RESET_NOT_FOUND)
        if self._reset_requested:
            raise ApplicationError("this reset link has already been used", type=RESET_USED)
        if self._closing or workflow.now() >= self._input.expires_at:
            raise ApplicationError("this reset link has expired", type=RESET_EXPIRED)

    @workflow.query(name="state")
    def state(self) -> PasswordResetState:
        return self._state

    def _publish(self) -> None:
        """EmailDeliveryStatus follows the newest email with the link."""
        links = [d for d in self._state.deliveries if d.kind is EmailKind.PASSWORD_RESET]
        if links:
            workflow.upsert_search_attributes(
                [EMAIL_DELIVERY_STATUS.value_set(links[-1].status.value)]
            )

    def _used(self) -> bool:
        return self._state.status is PasswordResetStatus.USED

    async def _tell_owner_of_the_change(self) -> None:
        """The "your password was changed" email, sent by a workflow of its own (abandoned
        when this one closes): the owner learns of it even while SMTP is down, and this
        workflow is free at once for the next request."""
        delivery = self._outbox.add(EmailKind.PASSWORD_CHANGED, workflow.now())
        assert self._state.registration_id is not None
        await workflow.start_child_workflow(
            AccountEmailWorkflow.run,
            AccountEmailInput(
                delivery_id=delivery.delivery_id,
                registration_id=self._state.registration_id,
                kind=delivery.kind,
                recipient=self._input.email,
                created_at=workflow.now(),
                expires_at=self._input.expires_at,
                email_retry=self._input.email_retry,
                email_task_queue=self._input.email_task_queue,
            ),
            id=account_email_workflow_id(delivery.delivery_id),
            parent_close_policy=ParentClosePolicy.ABANDON,
        )

    def _next_reset(self) -> PasswordResetInput:
        """The input of a new reset of the same address, valid as long as this one was."""
        key = self._input.reset_id.rsplit("_", 1)[0]
        now = workflow.now()
        return dataclasses.replace(
            self._input,
            reset_id=f"{key}_{workflow.uuid4().hex[:16]}",
            requested_at=now,
            expires_at=now + (self._input.expires_at - self._input.requested_at),
        )

    def _send_again(self) -> None:
        """A repeated request: the same link once more, when the previous email has ended
        (sent or failed), the cooldown has passed and the limit allows; else nothing."""
        policy = self._input.resend
        last = self._state.deliveries[-1]
        cooled = last.created_at is None or workflow.now() >= last.created_at + timedelta(
            seconds=policy.cooldown_seconds
        )
        if (
            self._link is None
            or self._outbox.link_send_in_progress()
            or not cooled
            or self._resends >= policy.limit
        ):
            workflow.logger.info(
                "repeated reset request for %s: no new email", self._input.reset_id
            )
            return
        self._resends += 1
        again = self._outbox.add(EmailKind.PASSWORD_RESET, workflow.now())
        self._outbox.start_link_send(again, link=self._link)
        self._publish()
