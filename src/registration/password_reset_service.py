"""RequestPasswordReset and ResetPassword (OWASP's forgot-password rules).

A request answers the same way, after the same work, whether or not the address has an
account: it always starts or joins the address's PasswordResetWorkflow, which finds out and
sends nothing without an active account. The new password is checked by the registration
policy and hashed here; only its hash reaches Temporal.
"""

from __future__ import annotations

import asyncio
import logging

from argon2 import PasswordHasher
from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from registration.db import utcnow
from registration.db_calls import in_thread
from registration.errors import (
    DependencyUnavailable,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    RegistrationError,
)
from registration.identifiers import (
    email_key,
    hash_token,
    is_token,
    new_reset_id,
    password_reset_workflow_id,
    workflow_id_for_reset,
)
from registration.passwords import in_hashing_thread
from registration.reset_repository import PasswordResetRepository, ResetRecord
from registration.settings import Settings
from registration.status import PasswordResetStatus
from registration.validation import for_field, normalize_email, password_violation
from registration.workflow_settings import email_retry_settings, resend_policy
from workflows.contracts import PasswordResetInput, ResetPasswordRequest
from workflows.password_reset import (
    REQUESTED_SIGNAL,
    RESET_EXPIRED,
    RESET_NOT_FOUND,
    RESET_USED,
    PasswordResetWorkflow,
)

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
        hasher: PasswordHasher,
        secret_key: bytes,
    ) -> None:
        self._settings = settings
        self._client = client
        self._resets = resets
        self._hasher = hasher
        self._secret_key = secret_key

    async def request(self, *, email: str) -> None:
        normalized, problem = normalize_email(email)
        if problem is not None or normalized is None:
            raise InvalidArgument([problem or FieldViolation("email", "is required")])
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
        try:
            # Signal-with-start: a new workflow, or the running one of this address, which
            # sends its link again if its rules allow.
            await self._client.start_workflow(
                PasswordResetWorkflow.run,
                workflow_input,
                id=password_reset_workflow_id(key),
                task_queue=s.temporal_task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                start_signal=REQUESTED_SIGNAL,
            )
        except RPCError as err:
            raise DependencyUnavailable(f"Temporal: {err.message}") from err
        log.info("password reset requested (%s)", password_reset_workflow_id(key))

    async def reset(self, *, token: str, new_password: str) -> None:
        if not is_token(token):
            raise InvalidArgument([FieldViolation("token", "is not a password reset token")])
        record = _usable(
            await in_thread(self._resets.find_by_token_hash, token_hash=hash_token(token))
        )
        s = self._settings
        problem = password_violation(
            new_password,
            email=record.email,
            min_length=s.password_min_length,
            max_length=s.password_max_length,
        )
        if problem is not None:
            raise InvalidArgument([for_field(problem, "new_password") or problem])
        password_hash = await in_hashing_thread(self._hasher.hash, new_password)

        handle = self._client.get_workflow_handle(workflow_id_for_reset(record.reset_id))
        try:
            async with asyncio.timeout(s.update_timeout.total_seconds()):
                # The SDK types an async update's result as its coroutine; here it is None.
                _ = await handle.execute_update(
                    PasswordResetWorkflow.reset_password,
                    ResetPasswordRequest(reset_id=record.reset_id, password_hash=password_hash),
                )
        except WorkflowUpdateFailedError as err:
            raise _refusal(err) from err
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as err:
            raise DependencyUnavailable("the password could not be changed now") from err
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise DependencyUnavailable(f"Temporal: {err.message}") from err
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
