"""AccountEmailWorkflow: sends one email of an account, with its delivery record, retried as
the settings say, on its own: the workflow that asked for it can close at once.

The password reset uses it for "your password was changed", so that the reset's workflow is
free for the next request at once, even while that email waits out an SMTP outage.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import AccountEmailInput, DeliveryState, LinkPurpose
    from workflows.outbox import Outbox


def account_email_workflow_id(delivery_id: str) -> str:
    return f"account-email-{delivery_id}"


@workflow.defn
class AccountEmailWorkflow:
    @workflow.run
    async def run(self, input: AccountEmailInput) -> DeliveryState:
        delivery = DeliveryState(
            delivery_id=input.delivery_id, kind=input.kind, created_at=input.created_at
        )
        outbox = Outbox(
            deliveries=[delivery],
            id_prefix=input.delivery_id,
            recipient=input.recipient,
            expires_at=input.expires_at,
            retry=input.email_retry,
            task_queue=input.email_task_queue,
            link_purpose=LinkPurpose.VERIFY_EMAIL,  # no link in these emails
            registration_id=input.registration_id,
        )
        await outbox.send(delivery)
        return delivery
