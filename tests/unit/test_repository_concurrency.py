"""Uniqueness and idempotency under concurrency, on SQLite and on PostgreSQL: many threads
doing at once what several workers and servers would do at once."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from registration.adapters.db.deliveries import DeliveryRepository
from registration.adapters.db.notifications import NotificationRepository
from registration.adapters.db.registrations import (
    CreateOutcome,
    NewVerification,
    RegistrationRepository,
)
from registration.adapters.db.tables import EmailDelivery, User
from registration.domain.email_kinds import EmailKind
from registration.domain.records import DeliveryOwner
from registration.domain.statuses import DeliveryStatus, RegistrationStatus

T0 = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
THREADS = 8
T = TypeVar("T")


def at_once(action: Callable[[int], T], count: int = THREADS) -> list[T]:
    """Runs `action(i)` in `count` threads released together; the results in order."""
    start = threading.Barrier(count)
    results: list[T | None] = [None] * count
    errors: list[BaseException] = []

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = action(i)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return [r for r in results if r is not None]


def create(repository: RegistrationRepository, registration_id: str, email: str) -> CreateOutcome:
    return repository.create_pending_user(
        user_id=uuid.uuid5(uuid.NAMESPACE_URL, registration_id),
        registration_id=registration_id,
        email=email,
        password_hash="$argon2id$fake",
        created_at=T0,
        expires_at=T0 + timedelta(hours=1),
        verification=NewVerification(
            delivery_id=f"{registration_id}.verification.1",
            token_hash=uuid.uuid4().hex.ljust(64, "0"),
            next_resend_at=None,
            resends_remaining=0,
        ),
    )


def test_concurrent_registrations_of_one_address_leave_one_live_account(engine: Engine) -> None:
    repository = RegistrationRepository(engine)
    outcomes = at_once(lambda i: create(repository, f"reg-{i}", "ann@example.org"))
    assert outcomes.count(CreateOutcome.CREATED) == 1
    assert outcomes.count(CreateOutcome.EMAIL_TAKEN) == THREADS - 1
    with Session(engine) as session:
        live = session.exec(select(User).where(User.email_claim == "ann@example.org")).all()
        deliveries = session.exec(select(EmailDelivery)).all()
    assert len(live) == 1
    # Nothing half-written by the losers: only the winner's verification delivery exists.
    assert [d.registration_id for d in deliveries] == [live[0].registration_id]


def test_repeats_of_one_create_at_once_all_report_created(engine: Engine) -> None:
    repository = RegistrationRepository(engine)
    outcomes = at_once(lambda _: create(repository, "reg-same", "bob@example.org"))
    assert outcomes == [CreateOutcome.CREATED] * THREADS
    with Session(engine) as session:
        assert len(session.exec(select(User)).all()) == 1


def test_concurrent_activations_agree_on_one_verification_time(engine: Engine) -> None:
    repository = RegistrationRepository(engine)
    create(repository, "reg-1", "cy@example.org")
    kept = at_once(
        lambda i: repository.activate(
            registration_id="reg-1", verified_at=T0 + timedelta(seconds=i)
        )
    )
    with Session(engine) as session:
        user = session.exec(select(User)).one()
    assert user.status is RegistrationStatus.ACTIVE
    assert set(kept) == {user.verified_at}


def test_concurrent_attempts_of_one_delivery_count_each_and_send_state_once(
    engine: Engine,
) -> None:
    repository = RegistrationRepository(engine)
    deliveries = DeliveryRepository(engine)
    create(repository, "reg-1", "di@example.org")
    owner = DeliveryOwner(registration_id="reg-1")
    at_once(
        lambda _: deliveries.open_delivery(
            delivery_id="reg-1.welcome.1", owner=owner, kind=EmailKind.WELCOME, now=T0
        )
    )
    at_once(
        lambda _: deliveries.count_attempt(delivery_id="reg-1.welcome.1", message_id="<m>", now=T0)
    )
    sent = at_once(
        lambda i: deliveries.mark_delivery_sent(
            delivery_id="reg-1.welcome.1", sent_at=T0 + timedelta(seconds=i)
        )
    )
    record = deliveries.get_delivery(delivery_id="reg-1.welcome.1")
    assert record is not None
    assert record.attempts == THREADS
    assert record.status is DeliveryStatus.SENT
    assert {s.status for s in sent} == {DeliveryStatus.SENT}


def test_an_order_recorded_by_many_at_once_is_one_notification(engine: Engine) -> None:
    notifications = NotificationRepository(engine)
    at_once(
        lambda _: notifications.record_notification(
            notification_id="n1",
            kind=EmailKind.ENROLLMENT,
            order_id="order-1",
            recipient="olga@example.org",
            delivery_id="n1.enrollment.1",
            now=T0,
        )
    )
    record = notifications.get_notification(notification_id="n1")
    assert record is not None and len(record.deliveries) == 1
