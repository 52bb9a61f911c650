"""Uses of a limit per subject in a fixed window, counted in the database so that every server
process shares them: one UPDATE adds to the stored count (concurrent uses each count), or the
first use of a window inserts the row. Each insert forgets a batch of counts too old to matter,
so the table holds about as many rows as there are subjects counting now."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import case, delete, insert, literal, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from registration.adapters.db.calls import clean_up
from registration.adapters.db.tables import RateLimit, UtcDateTime

# Old rows forgotten by each new one: more than one, so forgetting outpaces counting.
FORGET_BATCH = 100


class RateLimitRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def take(
        self,
        *,
        key: str,
        allowed: int,
        window: timedelta,
        now: datetime,
        forget_before: datetime,
    ) -> datetime | None:
        """Counts one use under `key` (a keyed hash of the limit and its subject). None while
        the window holds at most `allowed` uses; else when the window ends, and the use may be
        made again. Windows started at or before `forget_before` have ended for every limit."""
        stale = col(RateLimit.window_started_at) <= now - window
        for _ in range(2):
            try:
                with self._engine.begin() as connection:
                    row = connection.execute(
                        update(RateLimit)
                        .where(col(RateLimit.key) == key)
                        .values(
                            count=case((stale, 1), else_=col(RateLimit.count) + 1),
                            window_started_at=case(
                                (stale, literal(now, UtcDateTime())),
                                else_=col(RateLimit.window_started_at),
                            ),
                        )
                        .returning(col(RateLimit.count), col(RateLimit.window_started_at))
                    ).first()
                    if row is None:
                        connection.execute(
                            insert(RateLimit).values(key=key, count=1, window_started_at=now)
                        )
                        count, started = 1, now
                    else:
                        count, started = row[0], row[1]  # .count is a tuple's method
            except IntegrityError:
                continue  # another server counted the window's first use at the same moment
            if row is None:
                ended = (
                    select(col(RateLimit.key))
                    .where(col(RateLimit.window_started_at) <= forget_before)
                    .limit(FORGET_BATCH)
                )
                clean_up(
                    self._engine,
                    delete(RateLimit).where(col(RateLimit.key).in_(ended)),
                    what="ended rate limit windows",
                )
            return None if count <= allowed else started + window
        raise RuntimeError("could not count a use of a rate limit")
