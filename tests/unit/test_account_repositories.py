"""The password reset, sign-in throttle and notification repositories against a real SQLite
file: resets are single-use and never undo a later change, failed sign-ins are counted without
loss by concurrent servers, and an order is recorded once however often it is delivered."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from registration.adapters.db.notifications import NotificationRepository
from registration.adapters.db.password_resets import PasswordResetRepository
from registration.adapters.db.registrations import RegistrationRepository
from registration.adapters.db.sign_in_throttle import SignInThrottleRepository
from registration.adapters.db.tables import EmailDelivery, PasswordReset, User
from registration.domain.email_kinds import EmailKind
from registration.domain.statuses import DeliveryStatus, PasswordResetStatus, RegistrationStatus

EMAIL = "ann@example.org"
T0 = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
OLD_HASH = "$argon2id$old"


def _account(engine: Engine, *, active: bool = True, email: str = EMAIL) -> str:
    repository = RegistrationRepository(engine)
    registration_id = f"reg-{uuid.uuid4().hex[:8]}"
    repository.create_pending_user(
        user_id=uuid.uuid4(),
        registration_id=registration_id,
        email=email,
        password_hash=OLD_HASH,
        created_at=T0,
        expires_at=T0 + timedelta(days=1),
    )
    if active:
        repository.activate(registration_id=registration_id, verified_at=T0)
    return registration_id


def _open(resets: PasswordResetRepository, reset_id: str = "rst-1", **overrides: object) -> object:
    values: dict[str, object] = {
        "reset_id": reset_id,
        "email": EMAIL,
        "token_hash": f"{reset_id}-hash".ljust(64, "0"),
        "delivery_id": f"{reset_id}.password_reset.1",
        "created_at": T0,
        "expires_at": T0 + timedelta(hours=1),
    }
    values.update(overrides)
    return resets.open_reset(**values)  # type: ignore[arg-type]


def _hash_of(engine: Engine, registration_id: str) -> str | None:
    with Session(engine) as session:
        user = session.exec(select(User).where(User.registration_id == registration_id)).one()
        return user.password_hash


# Password resets ------------------------------------------------------------------------------


def test_a_reset_is_opened_only_for_an_active_account(engine: Engine) -> None:
    resets = PasswordResetRepository(engine)
    assert _open(resets) is None  # no account at all
    _account(engine, active=False)
    assert _open(resets) is None  # pending only
    with Session(engine) as session:
        assert session.exec(select(PasswordReset)).all() == []


def test_opening_is_idempotent_and_records_the_first_email(engine: Engine) -> None:
    registration_id = _account(engine)
    resets = PasswordResetRepository(engine)
    assert _open(resets) == registration_id
    assert _open(resets) == registration_id
    with Session(engine) as session:
        [reset] = session.exec(select(PasswordReset)).all()
        [delivery] = session.exec(
            select(EmailDelivery).where(EmailDelivery.kind == EmailKind.PASSWORD_RESET)
        ).all()
    assert reset.status is PasswordResetStatus.PENDING
    assert delivery.registration_id == registration_id
    assert delivery.status is DeliveryStatus.PENDING
    assert resets.link_is_live(token_hash=reset.token_hash)


def test_completing_replaces_the_hash_once_and_never_undoes_a_later_change(
    engine: Engine,
) -> None:
    registration_id = _account(engine)
    resets = PasswordResetRepository(engine)
    _open(resets, "rst-1")
    resets.complete(reset_id="rst-1", password_hash="$argon2id$first", now=T0)
    assert _hash_of(engine, registration_id) == "$argon2id$first"
    record = resets.find_by_token_hash(token_hash="rst-1-hash".ljust(64, "0"))
    assert record is not None and record.status is PasswordResetStatus.USED
    assert not resets.link_is_live(token_hash="rst-1-hash".ljust(64, "0"))

    # A later reset changes it again; a late repeat of the first completion changes nothing.
    _open(resets, "rst-2")
    resets.complete(reset_id="rst-2", password_hash="$argon2id$second", now=T0)
    resets.complete(reset_id="rst-1", password_hash="$argon2id$first", now=T0)
    assert _hash_of(engine, registration_id) == "$argon2id$second"


def test_an_expired_reset_cannot_be_completed(engine: Engine) -> None:
    registration_id = _account(engine)
    resets = PasswordResetRepository(engine)
    _open(resets)
    resets.expire(reset_id="rst-1", now=T0)
    resets.expire(reset_id="rst-1", now=T0)  # idempotent
    with pytest.raises(ValueError, match="expired"):
        resets.complete(reset_id="rst-1", password_hash="$argon2id$new", now=T0)
    assert _hash_of(engine, registration_id) == OLD_HASH
    with pytest.raises(LookupError):
        resets.expire(reset_id="rst-unknown", now=T0)


def test_expiring_a_used_reset_leaves_it_used(engine: Engine) -> None:
    _account(engine)
    resets = PasswordResetRepository(engine)
    _open(resets)
    resets.complete(reset_id="rst-1", password_hash="$argon2id$new", now=T0)
    resets.expire(reset_id="rst-1", now=T0)
    record = resets.find_by_token_hash(token_hash="rst-1-hash".ljust(64, "0"))
    assert record is not None and record.status is PasswordResetStatus.USED
    assert record.email == EMAIL


def test_a_rehash_never_overwrites_a_reset_that_landed_in_between(engine: Engine) -> None:
    registration_id = _account(engine)
    repository = RegistrationRepository(engine)
    resets = PasswordResetRepository(engine)
    _open(resets)
    resets.complete(reset_id="rst-1", password_hash="$argon2id$reset", now=T0)
    swapped = repository.replace_password_hash(
        registration_id=registration_id, old_hash=OLD_HASH, new_hash="$argon2id$rehash", now=T0
    )
    assert not swapped
    assert _hash_of(engine, registration_id) == "$argon2id$reset"


def test_credentials_are_found_for_live_accounts_only(engine: Engine) -> None:
    repository = RegistrationRepository(engine)
    assert repository.find_credentials(email=EMAIL) is None
    registration_id = _account(engine, active=False)
    pending = repository.find_credentials(email=EMAIL)
    assert pending is not None and pending.status is RegistrationStatus.PENDING_VERIFICATION
    repository.expire(registration_id=registration_id, now=T0)
    assert repository.find_credentials(email=EMAIL) is None


# Sign-in throttle -----------------------------------------------------------------------------


def test_the_nth_failure_in_the_window_locks_and_a_clear_starts_afresh(engine: Engine) -> None:
    throttle = SignInThrottleRepository(engine)
    window = timedelta(minutes=15)

    def fail(at: datetime) -> datetime | None:
        return throttle.record_failure(
            email_key="k1", source_key="s1", now=at, max_failures=3, window=window
        )

    assert fail(T0) is None
    assert fail(T0 + timedelta(minutes=1)) is None
    locked = fail(T0 + timedelta(minutes=2))
    assert locked == T0 + timedelta(minutes=17)
    assert (
        throttle.locked_until(email_key="k1", source_key="s1", now=T0 + timedelta(minutes=3))
        == locked
    )
    assert throttle.locked_until(email_key="k1", source_key="s1", now=locked) is None
    assert throttle.locked_until(email_key="other", source_key="s1", now=T0) is None

    # Failures further apart than the window never add up to a lock.
    assert fail(T0 + timedelta(hours=1)) is None
    assert fail(T0 + timedelta(hours=2)) is None
    assert fail(T0 + timedelta(hours=3)) is None

    fail(T0 + timedelta(hours=4))
    throttle.clear(email_key="k1")
    assert fail(T0 + timedelta(hours=4, minutes=1)) is None
    assert fail(T0 + timedelta(hours=4, minutes=2)) is None


def test_concurrent_failures_are_all_counted(engine: Engine) -> None:
    throttle = SignInThrottleRepository(engine)
    locks: list[datetime] = []
    start = threading.Barrier(8)

    def fail() -> None:
        start.wait()
        for _ in range(5):
            locked = throttle.record_failure(
                email_key="k2",
                source_key="s2",
                now=T0,
                max_failures=40,
                window=timedelta(minutes=15),
            )
            if locked is not None:
                locks.append(locked)

    threads = [threading.Thread(target=fail) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 40 failures from 8 threads at once: exactly the 40th locked, none was lost.
    assert locks == [T0 + timedelta(minutes=15)]


# Notifications --------------------------------------------------------------------------------


def test_an_order_is_recorded_once_with_its_pending_delivery(engine: Engine) -> None:
    notifications = NotificationRepository(engine)
    for _ in range(2):
        notifications.record_notification(
            notification_id="n1",
            kind=EmailKind.ENROLLMENT,
            order_id="order-1",
            recipient="olga@example.org",
            delivery_id="n1.enrollment.1",
            now=T0,
        )
    record = notifications.get_notification(notification_id="n1")
    assert record is not None
    assert record.order_id == "order-1"
    assert [(d.delivery_id, d.status) for d in record.deliveries] == [
        ("n1.enrollment.1", DeliveryStatus.PENDING)
    ]
    assert notifications.get_notification(notification_id="n2") is None
