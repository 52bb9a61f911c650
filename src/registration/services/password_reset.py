"""RequestPasswordReset and ResetPassword (OWASP's forgot-password rules).

A request answers the same way, after the same work, whether or not the address has an
account: it always starts or joins the address's PasswordResetWorkflow, which finds out and
sends nothing without an active account. The new password is checked by the registration
policy and hashed here; only its hash reaches Temporal.
"""

from __future__ import annotations

import logging

from argon2 import PasswordHasher
from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError

from registration.adapters.db.calls import in_thread
from registration.adapters.db.password_resets import PasswordResetRepository
from registration.adapters.password_hashing import in_hashing_thread
from registration.domain.clock import utcnow
from registration.domain.errors import (
    DependencyUnavailable,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    RegistrationError,
)
from registration.domain.failures import RESET_EXPIRED, RESET_NOT_FOUND, RESET_USED
from registration.domain.identifiers import (
    email_key,
    hash_token,
    is_token,
    new_reset_id,
    password_reset_workflow_id,
    workflow_id_for_reset,
)
from registration.domain.records import ResetRecord
from registration.domain.statuses import PasswordResetStatus
from registration.domain.validation import normalize_email
from registration.services import password_policy as policy
from registration.services.abuse_limits import AbuseLimits
from registration.services.temporal_calls import WorkflowClosed, calling_temporal, execute_update
from registration.services.workflow_inputs import email_retry_settings, resend_policy
from registration.settings import Settings
from workflows.contracts import PasswordResetInput, ResetPasswordRequest, ResetRequested
from workflows.password_reset import REQUESTED_SIGNAL, PasswordResetWorkflow

log = logging.getLogger(__name__)
NOT_VALID = "this reset link is not valid"
USED = "this reset link has already been used; ask for a new one if needed"
EXPIRED = "this reset link has expired; ask for a new one"


class PasswordResetService:
    def __init__(
        self,
        *,
        settings: Settings,
        client: Client,
        resets: PasswordResetRepository,
        limits: AbuseLimits,
        hasher: PasswordHasher,
        secret_key: bytes,
    ) -> None:
        self._settings = settings
        self._client = client
        self._resets = resets
        self._limits = limits
        self._hasher = hasher
        self._secret_key = secret_key

    async def request(self, *, email: str, source: str) -> None:
        normalized, problem = normalize_email(email)
        if problem is not None or normalized is None:
            raise InvalidArgument([problem or FieldViolation("email", "is required")])
        # Counted whether or not the address has an account: the limits tell none apart.
        await self._limits.email(recipient=normalized, source=source)
        key = email_key(self._secret_key, normalized)
        s = self._settings
        requested_at = utcnow()
        workflow_input = PasswordResetInput(
            reset_id=new_reset_id(key),
            email=normalized,
            email_key=key,
            requested_at=requested_at,
            expires_at=requested_at + s.password_reset_timeout,
            email_retry=email_retry_settings(s),
            resend=resend_policy(s),
            email_task_queue=s.email_task_queue,
        )
        # Signal-with-start: a new workflow, or the running one of this address, which sends
        # its link again if its rules allow.
        with calling_temporal():
            await self._client.start_workflow(
                PasswordResetWorkflow.run,
                workflow_input,
                id=password_reset_workflow_id(key),
                task_queue=s.temporal_task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                start_signal=REQUESTED_SIGNAL,
                start_signal_args=[ResetRequested(email_key=key, requested_at=requested_at)],
            )
        log.info("password reset requested (%s)", password_reset_workflow_id(key))

    async def reset(self, *, token: str, new_password: str, source: str) -> None:
        if not is_token(token):
            raise InvalidArgument([FieldViolation("token", "is not a password reset token")])
        record = _usable(
            await in_thread(self._resets.find_by_token_hash, token_hash=hash_token(token))
        )
        s = self._settings
        password, problem = policy.new_password(
            new_password, email=record.email, settings=s, field="new_password"
        )
        if problem is not None:
            raise InvalidArgument([problem])
        # "Your password was changed" goes out to the address; the token proves the caller
        # reads that mailbox, so the mailbox's count (a stranger's to fill) is not asked.
        await self._limits.email(recipient=None, source=source)
        password_hash = await in_hashing_thread(self._hasher.hash, password)

        try:
            await execute_update(
                self._client.get_workflow_handle(workflow_id_for_reset(record.reset_id)),
                PasswordResetWorkflow.reset_password,
                ResetPasswordRequest(reset_id=record.reset_id, password_hash=password_hash),
                within=s.update_timeout,
                unavailable="the password could not be changed now",
            )
        except WorkflowUpdateFailedError as err:
            raise _refusal(err) from err
        except WorkflowClosed as err:
            # The workflow has closed meanwhile: the database says how the reset ended.
            closed = await in_thread(self._resets.find_by_token_hash, token_hash=hash_token(token))
            used = closed is not None and closed.status is PasswordResetStatus.USED
            raise FailedPrecondition(USED if used else EXPIRED) from err
        log.info("password reset %s used", record.reset_id)


def _usable(record: ResetRecord | None) -> ResetRecord:
    """The reset, if it can still be used; else NOT_FOUND or FAILED_PRECONDITION."""
    if record is None:
        raise NotFound(NOT_VALID)
    if record.status is PasswordResetStatus.USED:
        raise FailedPrecondition(USED)
    if record.status is PasswordResetStatus.EXPIRED or record.expires_at <= utcnow():
        raise FailedPrecondition(EXPIRED)
    return record


def _refusal(err: WorkflowUpdateFailedError) -> RegistrationError:
    cause = err.cause
    if isinstance(cause, ApplicationError):
        if cause.type == RESET_USED:
            return FailedPrecondition(USED)
        if cause.type == RESET_EXPIRED:
            return FailedPrecondition(EXPIRED)
        if cause.type == RESET_NOT_FOUND:
            return NotFound(NOT_VALID)
    return DependencyUnavailable(f"the password could not be changed: {cause}")
