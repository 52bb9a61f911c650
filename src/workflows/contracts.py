"""Inputs and outputs of the registration workflow and its activities.

Single dataclasses, never ORM or protobuf objects, so fields can be added compatibly: a new
field needs a default so that histories recorded before it still decode.

No `from __future__ import annotations` here: the data converter reads each dataclass's type
hints on every decode, and hints kept as strings are evaluated again each time, at about three
times the cost (docs/performance.md).
"""

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from registration.domain.email_kinds import EmailKind
from registration.domain.statuses import DeliveryStatus, PasswordResetStatus, RegistrationStatus

# The patch after which a signal counts only with its proof (ResetRequested); `verify`
# carries none and verifies nothing.
SIGNALS_CARRY_PROOF = "signals-carry-proof"


class LinkPurpose(StrEnum):
    """What the link in an email does; each has its own page and its own token domain."""

    VERIFY_EMAIL = "verify"
    RESET_PASSWORD = "reset"


@dataclass
class EmailRetrySettings:
    initial_interval_seconds: float
    backoff_coefficient: float
    maximum_interval_seconds: float
    budget_seconds: float
    # One whole SMTP conversation (connect, EHLO, TLS, login, MAIL, RCPT, DATA).
    attempt_timeout_seconds: float = 180.0


@dataclass
class ResendPolicy:
    cooldown_seconds: float = 60.0
    limit: int = 5


@dataclass
class RegistrationInput:
    registration_id: str
    user_id: str
    email: str
    # argon2id hash made by the gRPC server; the password itself never reaches Temporal.
    password_hash: str
    requested_at: datetime
    expires_at: datetime
    # Fixed when the registration starts, so that later configuration changes cannot alter
    # the retry schedule, the resend rules or the reminder of a running workflow.
    email_retry: EmailRetrySettings
    resend: ResendPolicy = field(default_factory=ResendPolicy)
    # When the reminder goes out if the address is still unverified; None: no reminder.
    remind_at: datetime | None = None
    # Email sends run on their own, rate-limited task queue; None: the workflow's own.
    email_task_queue: str | None = None


@dataclass
class DeliveryState:
    delivery_id: str
    kind: EmailKind
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0
    last_error: str | None = None
    sent_at: datetime | None = None
    created_at: datetime | None = None
    message_id: str | None = None


@dataclass
class RegistrationState:
    """What the `state` query answers and the workflow returns."""

    registration_id: str
    user_id: str
    email: str
    status: RegistrationStatus
    created_at: datetime
    expires_at: datetime
    verified_at: datetime | None = None
    deliveries: list[DeliveryState] = field(default_factory=list)
    # Unset once no resend is left or the registration is decided.
    next_resend_allowed_at: datetime | None = None
    resends_remaining: int = 0


@dataclass
class VerifyEmailRequest:
    registration_id: str


@dataclass
class VerifyEmailResult:
    registration_id: str
    user_id: str
    status: RegistrationStatus
    verified_at: datetime | None
    # True when this request found the address verified already (a second click).
    already_verified: bool = False


@dataclass
class ResendRequest:
    registration_id: str


@dataclass
class ResendResult:
    registration_id: str
    next_resend_allowed_at: datetime | None
    resends_remaining: int


@dataclass
class AttemptNoticeInput:
    """Someone tried to register an address that has an account (PREVENT_ENUMERATION)."""

    email: str
    email_retry: EmailRetrySettings
    cooldown_seconds: float
    email_task_queue: str | None = None


@dataclass
class PasswordResetInput:
    reset_id: str
    email: str
    # The keyed hash of the address (the workflow ID's key): sign-in throttling is kept
    # under it, and a completed reset lifts it.
    email_key: str
    requested_at: datetime
    expires_at: datetime
    email_retry: EmailRetrySettings
    # A repeated request sends the link again, at most this often and this many times.
    resend: ResendPolicy = field(default_factory=ResendPolicy)
    email_task_queue: str | None = None


@dataclass
class PasswordResetState:
    """What the `state` query answers and the password reset workflow returns."""

    reset_id: str
    status: PasswordResetStatus
    expires_at: datetime
    # The account's registration; None until looked up, and when there is no active account.
    registration_id: str | None = None
    used_at: datetime | None = None
    deliveries: list[DeliveryState] = field(default_factory=list)


@dataclass
class ResetRequested:
    """The signal every RequestPasswordReset sends. It arrives encrypted for this workflow and
    naming its type, which only a holder of the payload keys can make: the proof that the
    request came through the API, not from whoever can reach Temporal. `requested_at` keeps
    one from being sent again later: a run counts only requests made since it began."""

    email_key: str
    requested_at: datetime | None = None


@dataclass
class ResetPasswordRequest:
    """The update that uses a reset: the new password arrives hashed (argon2id, by the
    server); the password itself never reaches Temporal."""

    reset_id: str
    password_hash: str


@dataclass
class AccountEmailInput:
    """One email of an account (no link in it), sent by a workflow of its own."""

    delivery_id: str
    registration_id: str
    kind: EmailKind
    recipient: str
    created_at: datetime
    expires_at: datetime
    email_retry: EmailRetrySettings
    email_task_queue: str | None = None


@dataclass
class EnrollmentDetails:
    """The order as the shop reported it; the template shows these fields."""

    order_id: str
    organizer_email: str
    organizer_name: str
    enrollee_name: str
    offering_name: str
    enrolled_at: datetime
    enrollee_email: str | None = None


@dataclass
class EnrollmentNotificationInput:
    notification_id: str
    enrollment: EnrollmentDetails
    requested_at: datetime
    email_retry: EmailRetrySettings


@dataclass
class NotificationState:
    """What the `state` query answers and the notification workflow returns."""

    notification_id: str
    order_id: str
    recipient: str
    created_at: datetime
    delivery: DeliveryState


# Activities -------------------------------------------------------------------------------


@dataclass
class CreatePendingUserInput:
    registration_id: str
    user_id: str
    email: str
    password_hash: str
    created_at: datetime
    expires_at: datetime
    # The first verification email: its delivery record and its link's token are made
    # with the user, so the link works from the start and GetRegistration shows it PENDING.
    verification_delivery_id: str = ""
    next_resend_allowed_at: datetime | None = None
    resends_remaining: int = 0


@dataclass
class NewVerificationInput:
    """A resend: a new verification delivery whose token replaces the previous one."""

    registration_id: str
    delivery_id: str
    created_at: datetime
    next_resend_allowed_at: datetime | None
    resends_remaining: int


@dataclass
class SendEmailInput:
    delivery_id: str
    registration_id: str
    kind: EmailKind
    recipient: str
    expires_at: datetime
    # The delivery whose token the email's link carries (verification, reminder, password
    # reset); the send is refused once that token no longer works.
    link_delivery_id: str | None = None
    link_purpose: LinkPurpose = LinkPurpose.VERIFY_EMAIL


@dataclass
class SendEmailResult:
    attempts: int
    sent_at: datetime
    message_id: str | None = None


@dataclass
class SendNoticeInput:
    """An email with no delivery record: it belongs to no registration the client knows."""

    notice_id: str
    kind: EmailKind
    recipient: str


@dataclass
class DeliveryFailedInput:
    delivery_id: str
    # The delivery belongs to a registration, or else to a notification.
    registration_id: str | None
    kind: EmailKind
    error: str
    notification_id: str | None = None


@dataclass
class DeliveryFailedResult:
    attempts: int


@dataclass
class ActivateUserInput:
    registration_id: str
    verified_at: datetime


@dataclass
class ExpireUserInput:
    registration_id: str


@dataclass
class OpenResetInput:
    reset_id: str
    email: str
    delivery_id: str
    created_at: datetime
    expires_at: datetime


@dataclass
class OpenResetResult:
    # None: the address has no active account, and nothing is to be sent.
    registration_id: str | None


@dataclass
class CompleteResetInput:
    reset_id: str
    password_hash: str
    email_key: str
    used_at: datetime


@dataclass
class ExpireResetInput:
    reset_id: str


@dataclass
class RecordNotificationInput:
    notification_id: str
    kind: EmailKind
    order_id: str
    recipient: str
    delivery_id: str
    created_at: datetime


@dataclass
class SendNotificationInput:
    delivery_id: str
    notification_id: str
    enrollment: EnrollmentDetails
