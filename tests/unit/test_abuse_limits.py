"""The parts of the abuse limits: counting in windows on both databases, the lock that grows,
who may say whose call it is, the browser's address behind proxies, and the settings."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from starlette.requests import Request

from registration.adapters.db.rate_limits import RateLimitRepository
from registration.adapters.db.sign_in_throttle import LONGEST_LOCK, SignInThrottleRepository
from registration.entrypoints.grpc.callers import END_USER_ADDRESS, source_of
from registration.entrypoints.web.security import browser_address
from registration.services.abuse_limits import mailbox
from registration.settings import GrpcClient, Rate, Settings

T0 = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
HOUR = timedelta(hours=1)


def test_a_window_allows_so_many_uses_then_says_when_it_ends(engine: Engine) -> None:
    limits = RateLimitRepository(engine)
    answers = [
        limits.take(key="k", allowed=3, window=HOUR, now=T0 + timedelta(minutes=i))
        for i in range(5)
    ]
    assert answers == [None, None, None, T0 + HOUR, T0 + HOUR]
    # Another key counts apart; a new window starts afresh.
    assert limits.take(key="other", allowed=3, window=HOUR, now=T0) is None
    assert limits.take(key="k", allowed=3, window=HOUR, now=T0 + HOUR) is None


def test_a_lock_grows_with_each_run_of_failures_and_spares_other_sources(engine: Engine) -> None:
    throttle = SignInThrottleRepository(engine)
    pair = {"email_key": "owner", "source_key": "stranger"}

    def run_of_failures(now: datetime) -> datetime | None:
        locked = None
        for _ in range(3):
            locked = throttle.record_failure(**pair, now=now, max_failures=3, window=HOUR)
        return locked

    assert run_of_failures(T0) == T0 + HOUR
    assert throttle.locked_until(**pair, now=T0) == T0 + HOUR
    assert throttle.locked_until(email_key="owner", source_key="owner's", now=T0) is None
    later = T0 + 2 * HOUR
    assert run_of_failures(later) == later + 2 * HOUR
    even_later = later + 3 * HOUR
    assert run_of_failures(even_later) == even_later + 4 * HOUR
    # Quiet for a day: back to the shortest lock; and never longer than a day.
    quiet = even_later + LONGEST_LOCK + 5 * HOUR
    assert run_of_failures(quiet) == quiet + HOUR
    # A password reset lifts every lock on the address.
    throttle.clear(email_key="owner")
    assert throttle.locked_until(**pair, now=quiet) is None


@dataclass
class FakeContext:
    metadata: list[tuple[str, str]] = field(default_factory=list)
    peer_address: str = "ipv4:192.0.2.1:50001"

    def invocation_metadata(self) -> list[tuple[str, str]]:
        return self.metadata

    def peer(self) -> str:
        return self.peer_address


def client(forwards: bool) -> GrpcClient:
    return GrpcClient(
        name="c", certificate="c", permissions=["public"], forwards_addresses=forwards
    )


@pytest.mark.parametrize(
    ("forwards", "metadata", "peer", "expected"),
    [
        (True, [(END_USER_ADDRESS, "203.0.113.9")], "ipv4:192.0.2.1:1", "203.0.113.9"),
        (False, [(END_USER_ADDRESS, "203.0.113.9")], "ipv4:192.0.2.1:1", "192.0.2.1"),
        (True, [(END_USER_ADDRESS, "not an address")], "ipv4:192.0.2.1:1", "192.0.2.1"),
        (True, [], "ipv6:[2001:db8::7]:1", "2001:db8::7"),
    ],
    ids=["trusted caller", "untrusted caller", "garbage", "peer over ipv6"],
)
def test_a_source_is_believed_only_from_a_caller_trusted_to_say_it(
    forwards: bool, metadata: list[tuple[str, str]], peer: str, expected: str
) -> None:
    context: Any = FakeContext(metadata, peer)
    assert source_of(client(forwards), context) == expected


def request_from(peer: str, forwarded: str | None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return Request({"type": "http", "client": (peer, 5000), "headers": headers})


PROXIES = [ipaddress.ip_network("10.0.0.0/8")]


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.9", None, "203.0.113.9"),
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # no proxy: the header is the browser's
        ("10.0.0.2", "198.51.100.1", "198.51.100.1"),
        ("10.0.0.2", "6.6.6.6, 198.51.100.1, 10.0.0.1", "198.51.100.1"),  # first one written
    ],
    ids=["direct", "untrusted header", "behind a proxy", "a chain with a forged start"],
)
def test_the_browser_address_passes_trusted_proxies_only(
    peer: str, forwarded: str | None, expected: str
) -> None:
    assert browser_address(request_from(peer, forwarded), PROXIES) == expected


def test_a_mailbox_is_counted_with_case_and_tag_folded() -> None:
    assert mailbox("Ann+Newsletter@Example.ORG") == mailbox("ann@example.org") == "ann@example.org"
    assert mailbox("bob@example.org") != mailbox("ann@example.org")


@pytest.mark.usefixtures("clean_environment")
def test_a_rate_is_a_count_and_a_duration() -> None:
    settings = Settings(_env_file=None, rate_limit_sign_ins="12/90s")  # type: ignore[arg-type]
    assert settings.rate_limit_sign_ins == Rate(12, timedelta(seconds=90))
    for bad in ("12", "x/1h", "0/1h", "3/0s"):
        with pytest.raises(ValidationError):
            Settings(_env_file=None, rate_limit_sign_ins=bad)  # type: ignore[arg-type]
