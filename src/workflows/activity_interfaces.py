"""The activities the workflows call, declared by name and types only.

Workflow code calls these declarations; the worker registers the implementations under the
same names (`src/activities/`), so workflows never import the code that does I/O. A test
checks that every implementation matches its declaration. The names are recorded in workflow
histories: they never change.
"""

from __future__ import annotations

from temporalio import activity

from workflows.contracts import (
    ActivateUserInput,
    CompleteResetInput,
    CreatePendingUserInput,
    DeliveryFailedInput,
    DeliveryFailedResult,
    ExpireResetInput,
    ExpireUserInput,
    NewVerificationInput,
    OpenResetInput,
    OpenResetResult,
    RecordNotificationInput,
    SendEmailInput,
    SendEmailResult,
    SendNoticeInput,
    SendNotificationInput,
)

# Registrations -----------------------------------------------------------------------------


@activity.defn(name="create_pending_user")
async def create_pending_user(input: CreatePendingUserInput) -> None:
    """Persists the user PENDING_VERIFICATION with its first verification delivery; fails
    EMAIL_ALREADY_REGISTERED when another live registration holds the address."""
    raise NotImplementedError


@activity.defn(name="start_new_verification")
async def start_new_verification(input: NewVerificationInput) -> None:
    """A resend: the new delivery's link replaces the previous one."""
    raise NotImplementedError


@activity.defn(name="activate_user")
async def activate_user(input: ActivateUserInput) -> None:
    raise NotImplementedError


@activity.defn(name="expire_user")
async def expire_user(input: ExpireUserInput) -> None:
    """EXPIRED, the password hash erased, the address free again."""
    raise NotImplementedError


# Email -------------------------------------------------------------------------------------


@activity.defn(name="send_email")
async def send_email(input: SendEmailInput) -> SendEmailResult:
    """One attempt of a recorded delivery of an account's email."""
    raise NotImplementedError


@activity.defn(name="send_notice")
async def send_notice(input: SendNoticeInput) -> None:
    """An email that belongs to no registration (someone tried to register the address)."""
    raise NotImplementedError


@activity.defn(name="record_delivery_failure")
async def record_delivery_failure(input: DeliveryFailedInput) -> DeliveryFailedResult:
    raise NotImplementedError


# Password resets ---------------------------------------------------------------------------


@activity.defn(name="open_password_reset")
async def open_password_reset(input: OpenResetInput) -> OpenResetResult:
    raise NotImplementedError


@activity.defn(name="complete_password_reset")
async def complete_password_reset(input: CompleteResetInput) -> None:
    raise NotImplementedError


@activity.defn(name="expire_password_reset")
async def expire_password_reset(input: ExpireResetInput) -> None:
    raise NotImplementedError


# Organizer notifications -------------------------------------------------------------------


@activity.defn(name="record_notification")
async def record_notification(input: RecordNotificationInput) -> None:
    raise NotImplementedError


@activity.defn(name="send_enrollment_notification")
async def send_enrollment_notification(input: SendNotificationInput) -> SendEmailResult:
    raise NotImplementedError
