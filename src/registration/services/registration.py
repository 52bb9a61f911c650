"""Registration: RegisterUser, VerifyEmail, ResendVerificationEmail and GetRegistration as
plain async methods.

It validates input, talks to Temporal and reads the database; it knows nothing of protobuf.
One running RegistrationWorkflow per address: its ID comes from the address (an HMAC).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from argon2 import PasswordHasher
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from registration.adapters.db.calls import in_thread
from registration.adapters.db.registrations import RegistrationRepository
from registration.adapters.password_hashing import in_hashing_thread
from registration.domain.clock import utcnow
from registration.domain.errors import (
    AlreadyExists,
    DependencyUnavailable,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    RegistrationExpired,
    TryLater,
)
from registration.domain.failures import (
    ALREADY_VERIFIED,
    REGISTRATION_EXPIRED,
    REGISTRATION_NOT_FOUND,
    RESEND_COOLDOWN,
    RESEND_LIMIT,
)
from registration.domain.identifiers import (
    email_key,
    hash_token,
    is_registration_id,
    is_token,
    new_registration_id,
    workflow_id_for_email_key,
    workflow_id_for_registration,
)
from registration.domain.records import RegistrationProgress, RegistrationRecord
from registration.domain.statuses import RegistrationStatus
from registration.domain.validation import normalize_email
from registration.services.abuse_limits import AbuseLimits
from registration.services.password_policy import new_password
from registration.services.temporal_calls import (
    WorkflowClosed,
    calling_temporal,
    delivery_from_state,
    execute_update,
    query_state,
    temporal_unavailable,
)
from registration.services.workflow_inputs import email_retry_settings, resend_policy
from registration.settings import Settings
from workflows.contracts import (
    AttemptNoticeInput,
    RegistrationInput,
    RegistrationState,
    ResendRequest,
    ResendResult,
    VerifyEmailRequest,
    VerifyEmailResult,
)
from workflows.registration import RegistrationWorkflow
from workflows.registration_attempt import (
    NOTICE_WORKFLOW_ID_PREFIX,
    RegistrationAttemptNoticeWorkflow,
)
from workflows.search_attributes import registration_started

log = logging.getLogger(__name__)
# How long RegisterUser waits for the workflow of an expired registration of the same address
# to close, before it answers that the address is taken.
CLOSING_WAIT = timedelta(seconds=5)


@dataclass(frozen=True)
class Registered:
    registration_id: str
    status: RegistrationStatus
    expires_at: datetime


@dataclass(frozen=True)
class Verified:
    registration_id: str
    user_id: str
    status: RegistrationStatus
    # The address was verified before this request (a second click, a link scanner).
    already_verified: bool = False


class RegistrationService:
    def __init__(
        self,
        *,
        settings: Settings,
        client: Client,
        repository: RegistrationRepository,
        limits: AbuseLimits,
        hasher: PasswordHasher,
        secret_key: bytes,
    ) -> None:
        self._settings = settings
        self._client = client
        self._repository = repository
        self._limits = limits
        self._hasher = hasher
        self._secret_key = secret_key

    async def register(self, *, email: str, password: str, source: str) -> Registered:
        """A new registration of `email`, asked for from `source` (see abuse_limits)."""
        normalized, password = self._validated(email, password)
        # Counted whether the address is new or taken: the limits tell no account apart.
        await self._limits.email(recipient=normalized, source=source)
        key = email_key(self._secret_key, normalized)
        s = self._settings
        hidden = s.prevent_enumeration
        # Hiding which addresses have accounts means taking as long for them: hash first.
        password_hash = await self._hash(password) if hidden else None

        # A cheap early answer for the common case; correctness does not rest on it (see below).
        if await in_thread(self._repository.live_registration_id, email=normalized) is not None:
            return await self._address_taken(normalized, key)

        password_hash = password_hash or await self._hash(password)
        registration_id = new_registration_id(key)
        requested_at = utcnow()
        expires_at = requested_at + s.verification_timeout
        workflow_input = RegistrationInput(
            registration_id=registration_id,
            user_id=str(uuid.uuid4()),
            email=normalized,
            password_hash=password_hash,
            requested_at=requested_at,
            expires_at=expires_at,
            email_retry=email_retry_settings(self._settings),
            resend=resend_policy(s),
            remind_at=(
                requested_at + s.verification_timeout * s.verification_reminder_at
                if s.verification_reminder
                else None
            ),
            email_task_queue=s.email_task_queue,
        )
        try:
            # One running workflow per address: concurrent calls for one email race on the
            # workflow ID, and Temporal lets exactly one of them start.
            handle = await self._start(workflow_input, key)
        except WorkflowAlreadyStartedError:
            if not await self._previous_workflow_closes(normalized, key):
                return await self._address_taken(normalized, key)
            try:
                handle = await self._start(workflow_input, key)
            except WorkflowAlreadyStartedError:
                return await self._address_taken(normalized, key)

        # A previous workflow for this address may have activated its account and closed
        # between the early check and the start; the database's unique claim on the address
        # tells, and the workflow that lost is ended before it sends anything.
        holder = await in_thread(self._repository.live_registration_id, email=normalized)
        if holder is not None and holder != registration_id:
            try:
                await handle.terminate(reason="email address already has an active account")
            except RPCError as err:
                # Best effort: the losing workflow also stops itself at the unique claim.
                log.warning(
                    "could not end losing registration %s: %s",
                    registration_id,
                    err,
                    extra={"registration_id": registration_id},
                )
            return await self._address_taken(normalized, key)

        log.info(
            "registration %s started",
            registration_id,
            extra={"registration_id": registration_id},
        )
        return Registered(
            registration_id=registration_id,
            status=RegistrationStatus.PENDING_VERIFICATION,
            expires_at=expires_at,
        )

    async def _start(
        self, workflow_input: RegistrationInput, key: str
    ) -> WorkflowHandle[RegistrationWorkflow, RegistrationState]:
        with calling_temporal():
            return await self._client.start_workflow(
                RegistrationWorkflow.run,
                workflow_input,
                id=workflow_id_for_email_key(key),
                task_queue=self._settings.temporal_task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                search_attributes=registration_started(),
            )

    async def _previous_workflow_closes(self, normalized: str, key: str) -> bool:
        """Whether the running workflow of this address is one that has just expired its
        registration and is about to close (then a new registration may start), rather than
        one that holds the address (its row says so, at once or a moment after it starts)."""
        handle = self._client.get_workflow_handle(workflow_id_for_email_key(key))
        deadline = asyncio.get_running_loop().time() + CLOSING_WAIT.total_seconds()
        while asyncio.get_running_loop().time() < deadline:
            if await in_thread(self._repository.live_registration_id, email=normalized) is not None:
                return False
            try:
                description = await handle.describe()
            except RPCError as err:
                if err.status is RPCStatusCode.NOT_FOUND:
                    return True
                raise temporal_unavailable(err) from err
            if description.status is not WorkflowExecutionStatus.RUNNING:
                return True
            await asyncio.sleep(0.1)
        return False

    def _validated(self, email: str, password: str) -> tuple[str, str]:
        """The normalized email and password, once both pass; else every violation."""
        normalized, email_problem = normalize_email(email)
        password, password_problem = new_password(
            password, email=normalized, settings=self._settings
        )
        violations = [v for v in (email_problem, password_problem) if v is not None]
        if violations or normalized is None:
            raise InvalidArgument(violations)
        return normalized, password

    async def _hash(self, password: str) -> str:
        # argon2 is deliberately slow; off the event loop it does not stall other calls.
        return await in_hashing_thread(self._hasher.hash, password)

    async def _address_taken(self, normalized: str, key: str) -> Registered:
        """ALREADY_EXISTS; or, with PREVENT_ENUMERATION, the answer a new address gets, while
        the owner of the address is told by email that someone tried."""
        s = self._settings
        if not s.prevent_enumeration:
            raise AlreadyExists("this email address already has an account")
        with calling_temporal():
            await self._client.start_workflow(
                RegistrationAttemptNoticeWorkflow.run,
                AttemptNoticeInput(
                    email=normalized,
                    email_retry=email_retry_settings(self._settings),
                    cooldown_seconds=s.registration_attempt_cooldown.total_seconds(),
                    email_task_queue=s.email_task_queue,
                ),
                id=NOTICE_WORKFLOW_ID_PREFIX + key,
                task_queue=s.temporal_task_queue,
                # During the cooldown further attempts join the running notice: no new email.
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            )
        return Registered(
            registration_id=new_registration_id(key),
            status=RegistrationStatus.PENDING_VERIFICATION,
            expires_at=utcnow() + s.verification_timeout,
        )

    async def verify(self, *, token: str) -> Verified:
        if not is_token(token):
            raise InvalidArgument([FieldViolation("token", "is not a verification token")])
        record = await in_thread(self._repository.find_by_token_hash, token_hash=hash_token(token))
        if record is None:
            raise NotFound("no registration has this verification token")
        if record.status is RegistrationStatus.EXPIRED:
            raise RegistrationExpired("this registration has expired; register again")
        if record.status is RegistrationStatus.ACTIVE:
            return _verified(record)

        verified = await self._verify_in_workflow(record.registration_id)
        return verified or await self._settled_verification(record.registration_id)

    async def confirm(self, *, registration_id: str) -> Verified:
        """An operator confirms a pending registration's address by hand: as verify, without
        the token (a back-office call)."""
        self._handle(registration_id)  # a malformed id is INVALID_ARGUMENT
        record = await in_thread(self._repository.get_registration, registration_id=registration_id)
        # Not persisted yet, or pending: the workflow decides.
        pending = record is None or record.status is RegistrationStatus.PENDING_VERIFICATION
        if pending and (verified := await self._verify_in_workflow(registration_id)) is not None:
            log.info(
                "registration %s confirmed by an operator",
                registration_id,
                extra={"registration_id": registration_id},
            )
            return verified
        return await self._settled_verification(
            registration_id, unknown=NotFound("no such registration")
        )

    async def _verify_in_workflow(self, registration_id: str) -> Verified | None:
        """The workflow's verification; None when it refused or has closed meanwhile (the
        database then says how the registration ended)."""
        try:
            result = cast(
                VerifyEmailResult,
                await execute_update(
                    self._handle(registration_id),
                    RegistrationWorkflow.verify_email,
                    VerifyEmailRequest(registration_id=registration_id),
                    within=self._settings.update_timeout,
                    unavailable="verification could not be completed now",
                ),
            )
        except (WorkflowUpdateFailedError, WorkflowClosed):
            return None
        return Verified(
            registration_id=result.registration_id,
            user_id=result.user_id,
            status=result.status,
            already_verified=result.already_verified,
        )

    async def resend_verification(self, *, registration_id: str, source: str) -> ResendResult:
        """A new verification email with a new link, if the workflow's rules allow it now."""
        self._handle(registration_id)  # a malformed id is INVALID_ARGUMENT, and counts nothing
        known = await in_thread(self._repository.get_registration, registration_id=registration_id)
        await self._limits.email(recipient=known.email if known else None, source=source)
        try:
            return cast(
                ResendResult,
                await execute_update(
                    self._handle(registration_id),
                    RegistrationWorkflow.resend_verification,
                    ResendRequest(registration_id=registration_id),
                    within=self._settings.update_timeout,
                    unavailable="the resend could not be completed now",
                ),
            )
        except WorkflowUpdateFailedError as err:
            refusal = _resend_refusal(err)
            if not isinstance(refusal, NotFound):
                raise refusal from err
            # The address's workflow now serves a newer registration: this one has ended.
        except WorkflowClosed:
            pass
        # No running workflow of this registration: it is decided, or there is none.
        record = await in_thread(self._repository.get_registration, registration_id=registration_id)
        if record is None:
            raise NotFound("no such registration")
        if record.status is RegistrationStatus.ACTIVE:
            raise FailedPrecondition("the address is already verified")
        raise RegistrationExpired("this registration has expired; register again")

    def _handle(
        self, registration_id: str
    ) -> WorkflowHandle[RegistrationWorkflow, RegistrationState]:
        if not is_registration_id(registration_id):
            raise InvalidArgument([FieldViolation("registration_id", "is not a registration id")])
        return self._client.get_workflow_handle_for(
            RegistrationWorkflow.run, workflow_id_for_registration(registration_id)
        )

    async def get(self, *, registration_id: str) -> RegistrationRecord:
        handle = self._handle(registration_id)
        record = await in_thread(self._repository.get_registration, registration_id=registration_id)
        if record is not None:
            return record
        # Not persisted yet: the workflow has just started and knows its state already.
        state = await query_state(handle, RegistrationWorkflow.state, what="registration")
        if state.registration_id != registration_id:
            raise NotFound("no such registration")
        return _record_from_state(state)

    async def progress(self, *, registration_id: str) -> RegistrationProgress:
        """What the person holding the registration id may see of it."""
        if self._settings.prevent_enumeration:
            # A taken address's registration id leads nowhere: its state would tell.
            raise FailedPrecondition("no registration's status is shown in enumeration-safe mode")
        return RegistrationProgress.of(await self.get(registration_id=registration_id))

    async def ping_temporal(self) -> None:
        if not await self._client.service_client.check_health():
            raise DependencyUnavailable("Temporal does not report SERVING")

    async def ping_database(self) -> None:
        await asyncio.to_thread(self._repository.ping)

    async def _settled_verification(
        self, registration_id: str, *, unknown: Exception | None = None
    ) -> Verified:
        record = await in_thread(self._repository.get_registration, registration_id=registration_id)
        if record is not None and record.status is RegistrationStatus.ACTIVE:
            return _verified(record)
        if record is not None and record.status is RegistrationStatus.EXPIRED:
            raise RegistrationExpired("this registration has expired; register again")
        if record is None and unknown is not None:
            raise unknown
        raise RegistrationExpired("this registration can no longer be verified; register again")


def _resend_refusal(err: WorkflowUpdateFailedError) -> Exception:
    """The workflow's refusal of a resend as the error the client gets."""
    cause = err.cause
    if not isinstance(cause, ApplicationError):
        return DependencyUnavailable(f"the resend failed: {cause}")
    if cause.type == RESEND_COOLDOWN and cause.details:
        retry_at = datetime.fromisoformat(str(cause.details[0]))
        return TryLater(cause.message, reason="RESEND_COOLDOWN", retry_at=retry_at)
    if cause.type == RESEND_LIMIT:
        return TryLater(cause.message, reason="RESEND_LIMIT", retry_at=None)
    if cause.type == ALREADY_VERIFIED:
        return FailedPrecondition(cause.message)
    if cause.type == REGISTRATION_EXPIRED:
        return RegistrationExpired("this registration has expired; register again")
    if cause.type == REGISTRATION_NOT_FOUND:
        return NotFound("no such registration")
    return DependencyUnavailable(f"the resend failed: {cause.message}")


def _verified(record: RegistrationRecord) -> Verified:
    """An account found ACTIVE already."""
    return Verified(
        registration_id=record.registration_id,
        user_id=str(record.user_id),
        status=record.status,
        already_verified=True,
    )


def _record_from_state(state: RegistrationState) -> RegistrationRecord:
    return RegistrationRecord(
        registration_id=state.registration_id,
        user_id=uuid.UUID(state.user_id),
        email=state.email,
        status=state.status,
        created_at=state.created_at,
        verified_at=state.verified_at,
        expires_at=state.expires_at,
        deliveries=[delivery_from_state(d, state.created_at) for d in state.deliveries],
        next_resend_allowed_at=state.next_resend_allowed_at,
        resends_remaining=state.resends_remaining,
    )
