"""Abuse limits every server process shares (counted in the database): how many emails one
mailbox gets and one source asks for, and how often one source tries to sign in. Over a limit
the call is refused with RESOURCE_EXHAUSTED and the time it may be made again (RetryInfo).

A source is the network address a call comes from: the end user's, as a caller trusted to
forward it says (`forwards_addresses`), else the connection's peer. A mailbox is counted with
its case and +tag folded (ann+1@x.org and Ann+2@X.org are one inbox), for counting only.
"""

from __future__ import annotations

from datetime import datetime

from registration.adapters.db.calls import in_thread
from registration.adapters.db.rate_limits import RateLimitRepository
from registration.domain.clock import utcnow
from registration.domain.errors import TryLater
from registration.domain.identifiers import limit_key
from registration.settings import Rate, Settings

MAILBOX_RATE_LIMITED = "MAILBOX_RATE_LIMITED"
SOURCE_RATE_LIMITED = "SOURCE_RATE_LIMITED"
SIGN_IN_RATE_LIMITED = "SIGN_IN_RATE_LIMITED"


class AbuseLimits:
    def __init__(
        self, *, settings: Settings, limits: RateLimitRepository, secret_key: bytes
    ) -> None:
        self._settings = settings
        self._limits = limits
        self._secret_key = secret_key

    async def email(self, *, recipient: str | None, source: str) -> None:
        """A call that sends an email to `recipient` (None: not known yet) from `source`."""
        s = self._settings
        await self._take(
            "emails-per-source",
            source,
            s.rate_limit_emails_per_source,
            reason=SOURCE_RATE_LIMITED,
            message="too many emails asked for from this network address; try again later",
        )
        if recipient is not None:
            await self._take(
                "emails-per-mailbox",
                mailbox(recipient),
                s.rate_limit_emails_per_mailbox,
                reason=MAILBOX_RATE_LIMITED,
                message="too many emails to this address; try again later",
            )

    async def sign_in(self, *, source: str) -> None:
        await self._take(
            "sign-ins-per-source",
            source,
            self._settings.rate_limit_sign_ins,
            reason=SIGN_IN_RATE_LIMITED,
            message="too many sign-ins from this network address; try again later",
        )

    def source_key(self, source: str) -> str:
        """The source as the sign-in throttle keeps it."""
        return limit_key(self._secret_key, "sign-in-source", source)

    async def _take(
        self, limit: str, subject: str, rate: Rate, *, reason: str, message: str
    ) -> None:
        retry_at: datetime | None = await in_thread(
            self._limits.take,
            key=limit_key(self._secret_key, limit, subject),
            allowed=rate.count,
            window=rate.window,
            now=utcnow(),
        )
        if retry_at is not None:
            raise TryLater(message, reason=reason, retry_at=retry_at)


def mailbox(address: str) -> str:
    """The inbox an address reaches, as far as counting goes: case and +tag folded."""
    local, _, domain = address.casefold().rpartition("@")
    return f"{local.partition('+')[0]}@{domain}"
