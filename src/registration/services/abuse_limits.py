"""Abuse limits every server process shares (counted in the database): how many emails one
mailbox gets and one source asks for, how many notifications one organizer gets, and how often
one source tries to sign in. Over a limit the call is refused with RESOURCE_EXHAUSTED and the
time it may be made again (RetryInfo).

A source is the network address a call comes from: the end user's, as a caller trusted to
forward it says (`forwards_addresses`), else the connection's peer; it is counted as its
network (`network_of`). A mailbox is counted with its case and +tag folded (ann+1@x.org and
Ann+2@X.org are one inbox), for counting only.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta

from registration.adapters.db.calls import in_thread
from registration.adapters.db.rate_limits import RateLimitRepository
from registration.domain.clock import utcnow
from registration.domain.errors import TryLater
from registration.domain.identifiers import limit_key
from registration.settings import Rate, Settings

MAILBOX_RATE_LIMITED = "MAILBOX_RATE_LIMITED"
SOURCE_RATE_LIMITED = "SOURCE_RATE_LIMITED"
SIGN_IN_RATE_LIMITED = "SIGN_IN_RATE_LIMITED"
NOTIFICATION_RATE_LIMITED = "NOTIFICATION_RATE_LIMITED"

# The least a subscriber is given (RFC 6177): the addresses in it are one source.
IPV6_SOURCE_PREFIX = 64


class AbuseLimits:
    def __init__(
        self, *, settings: Settings, limits: RateLimitRepository, secret_key: bytes
    ) -> None:
        self._settings = settings
        self._limits = limits
        self._secret_key = secret_key

    async def email(self, *, recipient: str | None, source: str) -> None:
        """A call that sends an email to `recipient` from `source`. None when the recipient is
        not known yet, or when the caller proved the mailbox is theirs (a reset link's token):
        a stranger's requests must not spend the owner's way back in."""
        s = self._settings
        await self._take(
            "emails-per-source",
            network_of(source),
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

    async def notification(self, *, recipient: str) -> None:
        """A notification to an organizer. Its caller is a back office speaking for every
        enrollment at once, so no source is counted; the mailbox bounds a runaway sender."""
        await self._take(
            "notifications-per-mailbox",
            mailbox(recipient),
            self._settings.rate_limit_notifications_per_mailbox,
            reason=NOTIFICATION_RATE_LIMITED,
            message="too many notifications to this address; try again later",
        )

    async def sign_in(self, *, source: str) -> None:
        await self._take(
            "sign-ins-per-source",
            network_of(source),
            self._settings.rate_limit_sign_ins,
            reason=SIGN_IN_RATE_LIMITED,
            message="too many sign-ins from this network address; try again later",
        )

    def source_key(self, source: str) -> str:
        """The source as the sign-in throttle keeps it."""
        return limit_key(self._secret_key, "sign-in-source", network_of(source))

    async def _take(
        self, limit: str, subject: str, rate: Rate, *, reason: str, message: str
    ) -> None:
        now = utcnow()
        retry_at: datetime | None = await in_thread(
            self._limits.take,
            key=limit_key(self._secret_key, limit, subject),
            allowed=rate.count,
            window=rate.window,
            now=now,
            forget_before=now - self._longest_window(),
        )
        if retry_at is not None:
            raise TryLater(message, reason=reason, retry_at=retry_at)

    def _longest_window(self) -> timedelta:
        """A count older than every limit's window counts for nothing, and may be forgotten."""
        s = self._settings
        return max(
            rate.window
            for rate in (
                s.rate_limit_emails_per_source,
                s.rate_limit_emails_per_mailbox,
                s.rate_limit_notifications_per_mailbox,
                s.rate_limit_sign_ins,
            )
        )


def network_of(source: str) -> str:
    """The network a source is counted as. An IPv6 address stands for its /64, the least a
    subscriber holds, who could otherwise take a new address for every call. An IPv4 address
    mapped into IPv6 is that IPv4 address. Anything else (a Unix socket) is itself."""
    try:
        address = ipaddress.ip_address(source)
    except ValueError:
        return source
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_SOURCE_PREFIX), strict=False))
    return str(address)


def mailbox(address: str) -> str:
    """The inbox an address reaches, as far as counting goes: case and +tag folded."""
    local, _, domain = address.casefold().rpartition("@")
    return f"{local.partition('+')[0]}@{domain}"
