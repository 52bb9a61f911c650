"""The parts of the abuse limits: counting in windows on both databases, forgetting what no
longer counts, the lock that grows, who may say whose call it is, the browser's address behind
proxies, a source's network, and the settings."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.requests import Request

from registration.adapters.db.rate_limits import FORGET_BATCH, RateLimitRepository
from registration.adapters.db.sign_in_throttle import LONGEST_LOCK, SignInThrottleRepository
from registration.adapters.db.tables import RateLimit, SignInThrottle
from registration.entrypoints.grpc.callers import END_USER_ADDRESS, source_of
from registration.entrypoints.web.security import browser_address
from registration.services.abuse_limits import mailbox, network_of
from registration.settings import GrpcClient, Rate, Settings

T0 = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
HOUR = timedelta(hours=1)


def take(limits: RateLimitRepository, key: str, now: datetime) -> datetime | None:
    return limits.take(key=key, allowed=3, window=HOUR, now=now, forget_before=now - HOUR)


def rows(engine: Engine, table: type[RateLimit] | type[SignInThrottle]) -> int:
    with Session(engine) as session:
        return session.execute(select(func.count()).select_from(table)).scalar_one()


def test_a_window_allows_so_many_uses_then_says_when_it_ends(engine: Engine) -> None:
    limits = RateLimitRepository(engine)
    answers = [take(limits, "k", T0 + timedelta(minutes=i)) for i in range(5)]
    assert answers == [None, None, None, T0 + HOUR, T0 + HOUR]
    # Another key counts apart; a new window starts afresh.
    assert take(limits, "other", T0) is None
    assert take(limits, "k", T0 + HOUR) is None


def test_ended_windows_are_forgotten_as_new_ones_begin(engine: Engine) -> None:
    limits = RateLimitRepository(engine)
    for i in range(FORGET_BATCH + 5):
        take(limits, f"once-{i}", T0)
    assert rows(engine, RateLimit) == FORGET_BATCH + 5
    # Still counting within the hour: nothing is forgotten.
    take(limits, "new", T0 + HOUR - timedelta(seconds=1))
    assert rows(engine, RateLimit) == FORGET_BATCH + 6
    # An hour on, each new subject forgets a batch of the ended windows.
    later = T0 + HOUR
    take(limits, "newer", later)
    assert rows(engine, RateLimit) == 5 + 2  # a batch forgotten: 5 old ones left, 2 counting
    take(limits, "newest", later)
    assert rows(engine, RateLimit) == 3  # the 3 still counting


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
    # Each run as soon as the lock before it ends, until the lock is a day long.
    ends = even_later + 4 * HOUR
    for lock in (8 * HOUR, 16 * HOUR, LONGEST_LOCK, LONGEST_LOCK):
        assert run_of_failures(ends) == ends + lock
        ends += lock
    # Right after a day's lock the run goes on: the day counts from when a lock ends.
    soon = ends + timedelta(minutes=1)
    assert run_of_failures(soon) == soon + LONGEST_LOCK
    # Quiet for a day after the last lock ends: back to the shortest lock.
    quiet = soon + LONGEST_LOCK + LONGEST_LOCK
    assert run_of_failures(quiet) == quiet + HOUR
    # A password reset lifts every lock on the address.
    throttle.clear(email_key="owner")
    assert throttle.locked_until(**pair, now=quiet) is None


def test_failures_after_a_lock_keep_the_run_going(engine: Engine) -> None:
    throttle = SignInThrottleRepository(engine)

    def fail(now: datetime, times: int) -> datetime | None:
        locked = None
        for _ in range(times):
            locked = throttle.record_failure(
                email_key="owner", source_key="stranger", now=now, max_failures=3, window=HOUR
            )
        return locked

    assert fail(T0, 3) == T0 + HOUR
    # Fewer failures than lock a pair, a day after that lock began: not a quiet day.
    fail(T0 + LONGEST_LOCK - timedelta(minutes=30), 2)
    later = T0 + HOUR + LONGEST_LOCK + timedelta(minutes=1)
    assert fail(later, 3) == later + 2 * HOUR


def test_quiet_pairs_are_forgotten_as_new_ones_fail(engine: Engine) -> None:
    throttle = SignInThrottleRepository(engine)

    def fail(source: str, now: datetime, times: int = 1) -> None:
        for _ in range(times):
            throttle.record_failure(
                email_key="owner", source_key=source, now=now, max_failures=3, window=HOUR
            )

    fail("locked", T0, times=3)  # locked for the hour after T0
    fail("failed once", T0)
    # A day after its last failure a pair is forgotten; a day after its lock ends, a locked one.
    fail("a day on", T0 + LONGEST_LOCK)
    assert rows(engine, SignInThrottle) == 2
    fail("a day after the lock", T0 + HOUR + LONGEST_LOCK)
    assert rows(engine, SignInThrottle) == 2


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


@pytest.mark.parametrize(
    ("source", "network"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
        ("unix:/run/registration.sock", "unix:/run/registration.sock"),
    ],
    ids=["ipv4", "ipv6", "the same /64", "ipv4 mapped into ipv6", "not an address"],
)
def test_a_source_is_counted_as_its_network(source: str, network: str) -> None:
    assert network_of(source) == network


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
