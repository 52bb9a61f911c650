"""RegistrationAttemptNoticeWorkflow: tells the owner of an address that someone tried to
register it again, when the server hides which addresses have accounts (PREVENT_ENUMERATION).

One workflow per address (its ID comes from the address's key) and a cooldown after the
email: attempts during the cooldown join the running workflow and send nothing more, so
nobody can flood an inbox through RegisterUser.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from registration.domain.email_kinds import EmailKind
    from workflows.activity_interfaces import send_notice
    from workflows.contracts import AttemptNoticeInput, SendNoticeInput
    from workflows.email_sending import email_activity_options, send_once_rendered

NOTICE_WORKFLOW_ID_PREFIX = "registration-notice-"


@workflow.defn
class RegistrationAttemptNoticeWorkflow:
    @workflow.run
    async def run(self, input: AttemptNoticeInput) -> None:
        info = workflow.info()
        notice = SendNoticeInput(
            notice_id=f"{info.workflow_id}.{info.run_id}",
            kind=EmailKind.REGISTRATION_ATTEMPT,
            recipient=input.email,
        )
        try:
            await send_once_rendered(
                lambda: workflow.execute_activity(
                    send_notice,
                    notice,
                    **email_activity_options(input.email_retry, input.email_task_queue),
                ),
                input.email_retry,
                lambda reason: None,  # logged by send_once_rendered; no record to keep it
            )
        except ActivityError as err:
            # A courtesy notice: giving up on it harms nobody's registration.
            workflow.logger.warning("registration attempt notice not sent: %s", err.cause)
        await workflow.sleep(timedelta(seconds=input.cooldown_seconds))
