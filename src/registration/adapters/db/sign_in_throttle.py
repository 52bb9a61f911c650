"""Failed sign-ins per address, counted so that many servers at once cannot lose a count."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import case, delete, literal, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from registration.adapters.db.tables import SignInThrottle, UtcDateTime


class SignInThrottleRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def locked_until(self, *, email_key: str, now: datetime) -> datetime | None:
        """When sign-in for this address is allowed again, if it is locked now."""
        with Session(self._engine) as session:
            row = session.get(SignInThrottle, email_key)
            if row is None or row.locked_until is None or row.locked_until <= now:
                return None
            return row.locked_until

    def record_failure(
        self, *, email_key: str, now: datetime, max_failures: int, window: timedelta
    ) -> datetime | None:
        """Count one failed sign-in. The `max_failures`-th failure within `window` locks the
        address for `window`; returns until when, if this failure locked it."""
        window_start = now - window
        stale = col(SignInThrottle.window_started_at) < window_start
        for _ in range(2):
            with Session(self._engine) as session:
                # One UPDATE that adds to the stored count: concurrent failures each count,
                # and it takes the row's write lock before anything is read.
                counted = session.exec(
                    update(SignInThrottle)
                    .where(col(SignInThrottle.email_key) == email_key)
                    .values(
                        failures=case((stale, 1), else_=col(SignInThrottle.failures) + 1),
                        window_started_at=case(
                            (stale, literal(now, UtcDateTime())),
                            else_=col(SignInThrottle.window_started_at),
                        ),
                    )
                )
                if counted.rowcount == 0:
                    session.add(
                        SignInThrottle(email_key=email_key, failures=1, window_started_at=now)
                    )
                    try:
                        session.flush()
                    except IntegrityError:
                        # Another server counted the first failure at the same moment.
                        session.rollback()
                        continue
                row = session.get(SignInThrottle, email_key, populate_existing=True)
                assert row is not None
                locked = None
                if row.failures >= max_failures:
                    locked = now + window
                    row.locked_until = locked
                    row.failures = 0
                    row.window_started_at = now
                session.commit()
                return locked
        raise RuntimeError("could not count a failed sign-in")

    def clear(self, *, email_key: str) -> None:
        """A successful sign-in or a password reset: the count starts afresh."""
        with Session(self._engine) as session:
            session.exec(delete(SignInThrottle).where(col(SignInThrottle.email_key) == email_key))
            session.commit()
