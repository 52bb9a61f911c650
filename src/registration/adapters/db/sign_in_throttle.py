"""Failed sign-ins per address and source, counted so that many servers at once cannot lose a
count. A stranger's failures lock the stranger's source out of that address, for longer each
time (OWASP's Authentication Cheat Sheet): the owner, elsewhere, signs in all the while."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import case, delete, literal, select, tuple_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from registration.adapters.db.calls import clean_up
from registration.adapters.db.tables import SignInThrottle, UtcDateTime

# The longest lock, however long the run of failures; and how long a pair must be quiet after
# its last lock ends, or its last window of failures starts, before its run starts again and
# it may be forgotten.
LONGEST_LOCK = timedelta(hours=24)
# Quiet pairs forgotten by each new one: more than one, so forgetting outpaces counting.
FORGET_BATCH = 100


class SignInThrottleRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def locked_until(self, *, email_key: str, source_key: str, now: datetime) -> datetime | None:
        """When this source may try this address again, if it is locked out now."""
        with Session(self._engine) as session:
            row = session.get(SignInThrottle, (email_key, source_key))
            if row is None or row.locked_until is None or row.locked_until <= now:
                return None
            return row.locked_until

    def record_failure(
        self,
        *,
        email_key: str,
        source_key: str,
        now: datetime,
        max_failures: int,
        window: timedelta,
    ) -> datetime | None:
        """Count one failed sign-in of this address from this source. The `max_failures`-th
        failure within `window` locks the pair for `window`, twice that after the next run of
        failures, and so on up to LONGEST_LOCK; returns until when, if this failure locked it.
        A pair quiet for LONGEST_LOCK (no lock, no failure) starts again from the shortest
        lock."""
        stale = col(SignInThrottle.window_started_at) <= now - window
        # The later of the last lock's end and the current window's start (failures after a
        # lock keep the run going). A case, not greatest(): SQLite has none.
        window_started = col(SignInThrottle.window_started_at)
        locked_until = col(SignInThrottle.locked_until)
        last_heard = case((locked_until > window_started, locked_until), else_=window_started)
        pair = (col(SignInThrottle.email_key) == email_key) & (
            col(SignInThrottle.source_key) == source_key
        )
        for _ in range(2):
            with Session(self._engine) as session:
                # One UPDATE that adds to the stored count: concurrent failures each count,
                # and it takes the row's write lock before anything is read.
                counted = session.exec(
                    update(SignInThrottle)
                    .where(pair)
                    .values(
                        failures=case((stale, 1), else_=col(SignInThrottle.failures) + 1),
                        lockouts=case(
                            (last_heard <= now - LONGEST_LOCK, 0),
                            else_=col(SignInThrottle.lockouts),
                        ),
                        window_started_at=case(
                            (stale, literal(now, UtcDateTime())),
                            else_=col(SignInThrottle.window_started_at),
                        ),
                    )
                )
                if counted.rowcount == 0:
                    session.add(
                        SignInThrottle(
                            email_key=email_key,
                            source_key=source_key,
                            failures=1,
                            window_started_at=now,
                        )
                    )
                    try:
                        session.flush()
                    except IntegrityError:
                        # Another server counted the first failure at the same moment.
                        session.rollback()
                        continue
                row = session.get(SignInThrottle, (email_key, source_key), populate_existing=True)
                assert row is not None
                locked = None
                if row.failures >= max_failures:
                    locked = now + min(window * 2**row.lockouts, LONGEST_LOCK)
                    row.locked_until = locked
                    row.lockouts += 1
                    row.failures = 0
                    row.window_started_at = now
                session.commit()
            if counted.rowcount == 0:
                self._forget_quiet(before=now - max(window, LONGEST_LOCK))
            return locked
        raise RuntimeError("could not count a failed sign-in")

    def _forget_quiet(self, *, before: datetime) -> None:
        """Forget pairs neither counting nor locked since `before`: nothing of theirs matters
        any more. Said without coalesce, so the index on window_started_at serves it."""
        quiet = (
            select(col(SignInThrottle.email_key), col(SignInThrottle.source_key))
            .where(
                col(SignInThrottle.window_started_at) <= before,
                col(SignInThrottle.locked_until).is_(None)
                | (col(SignInThrottle.locked_until) <= before),
            )
            .limit(FORGET_BATCH)
        )
        clean_up(
            self._engine,
            delete(SignInThrottle).where(
                tuple_(col(SignInThrottle.email_key), col(SignInThrottle.source_key)).in_(quiet)
            ),
            what="quiet sign-in throttles",
        )

    def clear(self, *, email_key: str, source_key: str | None = None) -> None:
        """A successful sign-in (from `source_key`: that pair's count starts afresh) or a
        password reset (no source: every lock on the address is lifted)."""
        which = col(SignInThrottle.email_key) == email_key
        if source_key is not None:
            which = which & (col(SignInThrottle.source_key) == source_key)
        with Session(self._engine) as session:
            session.exec(delete(SignInThrottle).where(which))
            session.commit()
