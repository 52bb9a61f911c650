"""The application layer: RegisterUser, VerifyEmail and GetRegistration as plain async methods.

It validates input, talks to Temporal and reads the database; it knows nothing of protobuf.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ParamSpec, TypeVar, cast

from argon2 import PasswordHasher
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from registration.db import utcnow
from registration.errors import (
    AlreadyExists,
    DependencyUnavailable,
    FieldViolation,
    InvalidArgument,
    NotFound,
    RegistrationExpired,
)
from registration.identifiers import (
    email_key,
    hash_token,
    is_registration_id,
    is_token,
    new_registration_id,
    workflow_id_for_email_key,
    workflow_id_for_registration,
)
from registration.repository import DeliveryRecord, RegistrationRecord, RegistrationRepository
from registration.settings import Settings
from registration.status import RegistrationStatus
from registration.validation import normalize_email, password_violation
from workflows.contracts import (
    AttemptNoticeInput,
    EmailRetrySettings,
    RegistrationInput,
    RegistrationState,
    VerifyEmailRequest,
    VerifyEmailResult,
)
from workflows.registration import RegistrationWorkflow
from workflows.registration_attempt import (
    NOTICE_WORKFLOW_ID_PREFIX,
    RegistrationAttemptNoticeWorkflow,
)

log = logging.getLogger(__name__)
P = ParamSpec("P")
# How long GetRegistration waits for a worker to answer the state query.
QUERY_TIMEOUT = timedelta(seconds=5)
# How long VerifyEmail waits for the workflow to activate the account, whatever the
# client's own deadline; past it the client gets UNAVAILABLE and may repeat the call.
VERIFY_TIMEOUT = timedelta(seconds=30)
T = TypeVar("T")


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


class RegistrationService:
    def __init__(
        self,
        *,
        settings: Settings,
        client: Client,
        repository: RegistrationRepository,
        hasher: PasswordHasher,
        secret_key: bytes,
    ) -> None:
        self._settings = settings
        self._client = client
        self._repository = repository
        self._hasher = hasher
        self._secret_key = secret_key

    async def register(self, *, email: str, password: str) -> Registered:
        normalized = self._validated(email, password)
        key = email_key(self._secret_key, normalized)
        s = self._settings
        hidden = s.prevent_enumeration
        # Hiding which addresses have accounts means taking as long for them: hash first.
        password_hash = await self._hash(password) if hidden else None

        # A cheap early answer for the common case; correctness does not rest on it (see below).
        if await self._db(self._repository.find_live_registration, email=normalized) is not None:
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
            email_retry=self._email_retry(),
        )
        try:
            # One running workflow per address: concurrent calls for one email race on the
            # workflow ID, and Temporal lets exactly one of them start.
            handle = await self._client.start_workflow(
                RegistrationWorkflow.run,
                workflow_input,
                id=workflow_id_for_email_key(key),
                task_queue=s.temporal_task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            return await self._address_taken(normalized, key)
        except RPCError as err:
            raise DependencyUnavailable(f"Temporal: {err.message}") from err

        # A previous workflow for this address may have activated its account and closed
        # between the early check and the start; the database's unique claim on the address
        # tells, and the workflow that lost is ended before it sends anything.
        live = await self._db(self._repository.find_live_registration, email=normalized)
        if live is not None and live.registration_id != registration_id:
            try:
                await handle.terminate(reason="email address already has an active account")
            except RPCError as err:
                # Best effort: the losing workflow also stops itself at the unique claim.
                log.warning("could not end losing registration %s: %s", registration_id, err)
            return await self._address_taken(normalized, key)

        log.info("registration %s started", registration_id)
        return Registered(
            registration_id=registration_id,
            status=RegistrationStatus.PENDING_VERIFICATION,
            expires_at=expires_at,
        )

    def _validated(self, email: str, password: str) -> str:
        """The normalized email, once email and password both pass; else every violation."""
        normalized, email_problem = normalize_email(email)
        violations = [v for v in (email_problem,) if v is not None]
        password_problem = password_violation(
            password,
            email=normalized,
            min_length=self._settings.password_min_length,
            max_length=self._settings.password_max_length,
        )
        if password_problem is not None:
            violations.append(password_problem)
        if violations or normalized is None:
            raise InvalidArgument(violations)
        return normalized

    async def _hash(self, password: str) -> str:
        # argon2 is deliberately slow; off the event loop it does not stall other calls.
        return await asyncio.to_thread(self._hasher.hash, password)

    def _email_retry(self) -> EmailRetrySettings:
        s = self._settings
        return EmailRetrySettings(
            initial_interval_seconds=s.email_retry_initial_interval.total_seconds(),
            backoff_coefficient=s.email_retry_backoff_coefficient,
            maximum_interval_seconds=s.email_retry_maximum_interval.total_seconds(),
            budget_seconds=s.email_retry_budget.total_seconds(),
            # SMTP_TIMEOUT bounds each step; a conversation has about six of them.
            attempt_timeout_seconds=6 * s.smtp_timeout.total_seconds(),
        )

    async def _address_taken(self, normalized: str, key: str) -> Registered:
        """ALREADY_EXISTS; or, with PREVENT_ENUMERATION, the answer a new address gets, while
        the owner of the address is told by email that someone tried."""
        s = self._settings
        if not s.prevent_enumeration:
            raise AlreadyExists("this email address already has an account")
        try:
            await self._client.start_workflow(
                RegistrationAttemptNoticeWorkflow.run,
                AttemptNoticeInput(
                    email=normalized,
                    email_retry=self._email_retry(),
                    cooldown_seconds=s.registration_attempt_cooldown.total_seconds(),
                ),
                id=NOTICE_WORKFLOW_ID_PREFIX + key,
                task_queue=s.temporal_task_queue,
                # During the cooldown further attempts join the running notice: no new email.
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            )
        except RPCError as err:
            raise DependencyUnavailable(f"Temporal: {err.message}") from err
        return Registered(
            registration_id=new_registration_id(key),
            status=RegistrationStatus.PENDING_VERIFICATION,
            expires_at=utcnow() + s.verification_timeout,
        )

    async def verify(self, *, token: str) -> Verified:
        if not is_token(token):
            raise InvalidArgument([FieldViolation("token", "is not a verification token")])
        record = await self._db(self._repository.find_by_token_hash, token_hash=hash_token(token))
        if record is None:
            raise NotFound("no registration has this verification token")
        if record.status is RegistrationStatus.EXPIRED:
            raise RegistrationExpired("this registration has expired; register again")
        if record.status is RegistrationStatus.ACTIVE:
            return _verified(record)

        handle: WorkflowHandle[RegistrationWorkflow, RegistrationState] = (
            self._client.get_workflow_handle_for(
                RegistrationWorkflow.run, workflow_id_for_registration(record.registration_id)
            )
        )
        try:
            # The SDK types an async update's result as its coroutine; the value is the result.
            async with asyncio.timeout(VERIFY_TIMEOUT.total_seconds()):
                result = cast(
                    VerifyEmailResult,
                    await handle.execute_update(
                        RegistrationWorkflow.verify_email,
                        VerifyEmailRequest(registration_id=record.registration_id),
                    ),
                )
        except WorkflowUpdateFailedError:
            return await self._settled_verification(record.registration_id)
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as err:
            # No worker completed it in time (all busy, or none running). The update may
            # still complete later; repeating VerifyEmail is safe either way.
            raise DependencyUnavailable("verification could not be completed now") from err
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                # The workflow closed in the meantime; the database says how it ended.
                return await self._settled_verification(record.registration_id)
            raise DependencyUnavailable(f"Temporal: {err.message}") from err
        return Verified(
            registration_id=result.registration_id, user_id=result.user_id, status=result.status
        )

    async def get(self, *, registration_id: str) -> RegistrationRecord:
        if not is_registration_id(registration_id):
            raise InvalidArgument([FieldViolation("registration_id", "is not a registration id")])
        record = await self._db(self._repository.get_registration, registration_id=registration_id)
        if record is not None:
            return record
        # Not persisted yet: the workflow has just started and knows its state already.
        handle = self._client.get_workflow_handle(workflow_id_for_registration(registration_id))
        try:
            state = await handle.query(RegistrationWorkflow.state, rpc_timeout=QUERY_TIMEOUT)
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                raise NotFound("no such registration") from err
            raise DependencyUnavailable(f"Temporal: {err.message}") from err
        except WorkflowQueryFailedError as err:
            raise DependencyUnavailable("the registration's state cannot be read now") from err
        if state.registration_id != registration_id:
            raise NotFound("no such registration")
        return _record_from_state(state)

    async def ping_temporal(self) -> None:
        if not await self._client.service_client.check_health():
            raise DependencyUnavailable("Temporal does not report SERVING")

    async def ping_database(self) -> None:
        await asyncio.to_thread(self._repository.ping)

    async def _settled_verification(self, registration_id: str) -> Verified:
        record = await self._db(self._repository.get_registration, registration_id=registration_id)
        if record is not None and record.status is RegistrationStatus.ACTIVE:
            return _verified(record)
        if record is not None and record.status is RegistrationStatus.EXPIRED:
            raise RegistrationExpired("this registration has expired; register again")
        raise RegistrationExpired("this registration can no longer be verified; register again")

    async def _db(self, call: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await asyncio.to_thread(call, *args, **kwargs)
        except (OperationalError, InterfaceError, PoolTimeoutError) as err:
            raise DependencyUnavailable("database unavailable") from err


def _verified(record: RegistrationRecord) -> Verified:
    return Verified(
        registration_id=record.registration_id,
        user_id=str(record.user_id),
        status=record.status,
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
        deliveries=[
            DeliveryRecord(
                delivery_id=d.delivery_id,
                kind=d.kind,
                status=d.status,
                attempts=d.attempts,
                last_error=d.last_error,
                created_at=state.created_at,
                sent_at=d.sent_at,
            )
            for d in state.deliveries
        ],
    )
