"""Authenticate: sign-in for active accounts.

A wrong password and an unknown address get the same answer after the same work: an unknown
address is checked against a dummy hash made with the current parameters, and failures are
counted under the address's keyed hash whether or not it has an account. Only the right
password learns that an account is not verified yet. Failures lock out the source they come
from, not the address: a stranger cannot lock the owner out.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from registration.adapters.db.calls import in_thread
from registration.adapters.db.registrations import RegistrationRepository
from registration.adapters.db.sign_in_throttle import SignInThrottleRepository
from registration.adapters.password_hashing import in_hashing_thread
from registration.domain.clock import utcnow
from registration.domain.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    TryLater,
    Unauthenticated,
)
from registration.domain.identifiers import email_key
from registration.domain.records import Credentials
from registration.domain.statuses import RegistrationStatus
from registration.domain.validation import normalize_email, normalize_password
from registration.services.abuse_limits import AbuseLimits
from registration.settings import Settings

log = logging.getLogger(__name__)
WRONG_CREDENTIALS = "wrong email or password"
SIGN_IN_THROTTLED = "SIGN_IN_THROTTLED"


@dataclass(frozen=True)
class SignedIn:
    user_id: str
    registration_id: str


class SignInService:
    def __init__(
        self,
        *,
        settings: Settings,
        repository: RegistrationRepository,
        throttle: SignInThrottleRepository,
        limits: AbuseLimits,
        hasher: PasswordHasher,
        secret_key: bytes,
    ) -> None:
        self._settings = settings
        self._repository = repository
        self._throttle = throttle
        self._limits = limits
        self._hasher = hasher
        self._secret_key = secret_key
        # Verified in place of a missing account's hash: as costly as a real one.
        self._dummy_hash = hasher.hash(secrets.token_urlsafe(16))

    async def authenticate(self, *, email: str, password: str, source: str) -> SignedIn:
        """Sign-in from `source` (the caller's network address, see abuse_limits)."""
        normalized, problem = normalize_email(email)
        violations = [problem] if problem is not None else []
        # No length rules here: an account may predate today's policy.
        if not password:
            violations.append(FieldViolation("password", "is required"))
        if violations or normalized is None:
            raise InvalidArgument(violations)
        await self._limits.sign_in(source=source)
        key = email_key(self._secret_key, normalized)
        pair = {"email_key": key, "source_key": self._limits.source_key(source)}
        locked_until = await in_thread(self._throttle.locked_until, **pair, now=utcnow())
        if locked_until is not None:
            raise TryLater(
                "too many failed sign-ins for this address; try again later",
                reason=SIGN_IN_THROTTLED,
                retry_at=locked_until,
            )

        credentials = await in_thread(self._repository.find_credentials, email=normalized)
        stored = credentials.password_hash if credentials is not None else self._dummy_hash
        matched = await self._matching_form(stored, password)
        if matched is None or credentials is None:
            locked = await in_thread(
                self._throttle.record_failure,
                **pair,
                now=utcnow(),
                max_failures=self._settings.sign_in_max_failures,
                window=self._settings.sign_in_lockout,
            )
            if locked is not None:
                log.warning("sign-in locked until %s after repeated failures", locked)
            raise Unauthenticated(WRONG_CREDENTIALS)
        if credentials.status is not RegistrationStatus.ACTIVE:
            raise FailedPrecondition("email not verified: open the link in the verification email")

        await in_thread(self._throttle.clear, **pair)
        await self._upgrade_hash(credentials, normalize_password(password), matched=matched)
        log.info(
            "registration %s signed in",
            credentials.registration_id,
            extra={"registration_id": credentials.registration_id},
        )
        return SignedIn(
            user_id=str(credentials.user_id), registration_id=credentials.registration_id
        )

    def _matches(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except VerificationError:
            return False
        except InvalidHashError:
            log.error("a stored password hash is not an argon2 hash")
            return False

    async def _matching_form(self, stored: str, password: str) -> str | None:
        """The form of the password that `stored` was made from: the normalized one (NFKC),
        or, for a hash made before passwords were normalized, the password as typed; None
        when neither matches. The second check depends only on what was typed, never on
        whether the address has an account: both answers still take the same time."""
        normalized = normalize_password(password)
        if await in_hashing_thread(self._matches, stored, normalized):
            return normalized
        if normalized != password and await in_hashing_thread(self._matches, stored, password):
            return password
        return None

    async def _upgrade_hash(self, credentials: Credentials, password: str, *, matched: str) -> None:
        """A hash made with weaker parameters than today's, or of the password as typed
        before passwords were normalized (`matched` is the form that matched), is replaced by
        one of the normalized `password`, now that it is at hand."""
        if matched == password and not self._hasher.check_needs_rehash(credentials.password_hash):
            return
        stronger = await in_hashing_thread(self._hasher.hash, password)
        replaced = await in_thread(
            self._repository.replace_password_hash,
            registration_id=credentials.registration_id,
            old_hash=credentials.password_hash,
            new_hash=stronger,
            now=utcnow(),
        )
        if replaced:
            log.info(
                "registration %s: password hash upgraded",
                credentials.registration_id,
                extra={"registration_id": credentials.registration_id},
            )
