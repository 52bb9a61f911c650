"""Activities of the password reset workflow. Each is idempotent (at-least-once)."""

from __future__ import annotations

from temporalio import activity

from activities.database_calls import run_db
from registration.adapters.db.password_resets import PasswordResetRepository
from registration.adapters.db.sign_in_throttle import SignInThrottleRepository
from registration.domain.clock import utcnow
from registration.domain.identifiers import derive_token, hash_token
from workflows.contracts import (
    CompleteResetInput,
    ExpireResetInput,
    LinkPurpose,
    OpenResetInput,
    OpenResetResult,
)


class PasswordResetActivities:
    """Built once per worker by `worker.py` with the collaborators it needs."""

    def __init__(
        self,
        *,
        resets: PasswordResetRepository,
        throttle: SignInThrottleRepository,
        secret_key: bytes,
    ) -> None:
        self._resets = resets
        self._throttle = throttle
        self._secret_key = secret_key

    @activity.defn(name="open_password_reset")
    async def open_password_reset(self, input: OpenResetInput) -> OpenResetResult:
        """Record the reset with its token's hash, if the address has an active account. The
        token is derived here and only ever leaves the worker in the email."""
        token = derive_token(
            self._secret_key, input.delivery_id, purpose=LinkPurpose.RESET_PASSWORD.value
        )
        registration_id = await run_db(
            self._resets.open_reset,
            reset_id=input.reset_id,
            email=input.email,
            token_hash=hash_token(token),
            delivery_id=input.delivery_id,
            created_at=input.created_at,
            expires_at=input.expires_at,
        )
        return OpenResetResult(registration_id=registration_id)

    @activity.defn(name="complete_password_reset")
    async def complete_password_reset(self, input: CompleteResetInput) -> None:
        """The new password hash replaces the old one and the token stops working; a lock on
        sign-in from earlier failures is lifted: the owner has just proved the mailbox."""
        await run_db(
            self._resets.complete,
            reset_id=input.reset_id,
            password_hash=input.password_hash,
            now=input.used_at,
        )
        await run_db(self._throttle.clear, email_key=input.email_key)
        activity.logger.info("password reset %s used", input.reset_id)

    @activity.defn(name="expire_password_reset")
    async def expire_password_reset(self, input: ExpireResetInput) -> None:
        await run_db(self._resets.expire, reset_id=input.reset_id, now=utcnow())
