"""RegistrationRepository against a real SQLite file: every write is idempotent."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, StatementError
from sqlmodel import Session, select

from registration.db import EmailDelivery, User, build_engine, create_schema
from registration.repository import CreateOutcome, RegistrationRepository
from registration.status import DeliveryStatus, EmailKind, RegistrationStatus

EMAIL = "ann@example.org"
T0 = datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = build_engine(f"sqlite:///{tmp_path}/db.sqlite")
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def repo(engine: Engine) -> RegistrationRepository:
    return RegistrationRepository(engine)


def _create(
    repo: RegistrationRepository,
    registration_id: str = "reg-1",
    *,
    email: str = EMAIL,
    user_id: uuid.UUID | None = None,
    created_at: datetime = T0,
) -> CreateOutcome:
    return repo.create_pending_user(
        user_id=user_id or uuid.uuid5(uuid.NAMESPACE_URL, registration_id),
        registration_id=registration_id,
        email=email,
        password_hash="$argon2id$fake-hash",
        created_at=created_at,
        expires_at=created_at + timedelta(hours=24),
    )


def _user(engine: Engine, registration_id: str) -> User:
    with Session(engine) as session:
        return session.exec(select(User).where(User.registration_id == registration_id)).one()


def _user_count(engine: Engine) -> int:
    with Session(engine) as session:
        return len(session.exec(select(User)).all())


def _attempt(
    repo: RegistrationRepository, attempt: int, delivery_id: str = "reg-1.verification.1"
) -> DeliveryStatus:
    record = repo.record_delivery_attempt(
        delivery_id=delivery_id,
        registration_id="reg-1",
        kind=EmailKind.VERIFICATION,
        attempt=attempt,
        now=T0 + timedelta(seconds=attempt),
    )
    return record.status


# Pending users -----------------------------------------------------------------------------


def test_create_pending_user_stores_a_pending_registration(
    repo: RegistrationRepository, engine: Engine
) -> None:
    assert _create(repo) is CreateOutcome.CREATED
    record = repo.get_registration(registration_id="reg-1")
    assert record is not None
    assert record.email == EMAIL
    assert record.status is RegistrationStatus.PENDING_VERIFICATION
    assert record.verified_at is None
    assert record.deliveries == []
    user = _user(engine, "reg-1")
    assert user.email_claim == EMAIL
    assert user.password_hash == "$argon2id$fake-hash"


def test_create_pending_user_is_idempotent(repo: RegistrationRepository, engine: Engine) -> None:
    assert _create(repo) is CreateOutcome.CREATED
    assert _create(repo) is CreateOutcome.CREATED
    assert _user_count(engine) == 1


def test_second_registration_for_a_pending_email_is_refused(
    repo: RegistrationRepository, engine: Engine
) -> None:
    assert _create(repo, "reg-1") is CreateOutcome.CREATED
    assert _create(repo, "reg-2") is CreateOutcome.EMAIL_TAKEN
    assert _user_count(engine) == 1
    assert repo.get_registration(registration_id="reg-2") is None


def test_second_registration_for_an_active_email_is_refused(
    repo: RegistrationRepository,
) -> None:
    _create(repo, "reg-1")
    repo.activate(registration_id="reg-1", verified_at=T0)
    assert _create(repo, "reg-2") is CreateOutcome.EMAIL_TAKEN


def test_email_is_free_again_after_expiry(repo: RegistrationRepository, engine: Engine) -> None:
    _create(repo, "reg-1")
    repo.expire(registration_id="reg-1", now=T0 + timedelta(days=1))
    assert _create(repo, "reg-2") is CreateOutcome.CREATED
    assert _user_count(engine) == 2
    live = repo.find_live_registration(email=EMAIL)
    assert live is not None
    assert live.registration_id == "reg-2"


def test_find_live_registration_ignores_expired_ones(repo: RegistrationRepository) -> None:
    _create(repo, "reg-1")
    assert repo.find_live_registration(email=EMAIL) is not None
    repo.expire(registration_id="reg-1", now=T0)
    assert repo.find_live_registration(email=EMAIL) is None


def test_unknown_registration_is_none(repo: RegistrationRepository) -> None:
    assert repo.get_registration(registration_id="nope") is None


# Expiry ------------------------------------------------------------------------------------


def test_expire_erases_password_and_claim_but_keeps_token_hash(
    repo: RegistrationRepository, engine: Engine
) -> None:
    _create(repo)
    repo.set_verification_token_hash(registration_id="reg-1", token_hash="f" * 64, now=T0)
    later = T0 + timedelta(days=1)

    repo.expire(registration_id="reg-1", now=later)

    user = _user(engine, "reg-1")
    assert user.status is RegistrationStatus.EXPIRED
    assert user.password_hash is None
    assert user.email_claim is None
    assert user.email == EMAIL
    assert user.verification_token_hash == "f" * 64
    assert user.updated_at == later


def test_expired_registration_is_still_found_by_its_token(repo: RegistrationRepository) -> None:
    _create(repo)
    repo.set_verification_token_hash(registration_id="reg-1", token_hash="f" * 64, now=T0)
    repo.expire(registration_id="reg-1", now=T0)
    record = repo.find_by_token_hash(token_hash="f" * 64)
    assert record is not None
    assert record.status is RegistrationStatus.EXPIRED


def test_expire_is_idempotent(repo: RegistrationRepository, engine: Engine) -> None:
    _create(repo)
    first = T0 + timedelta(days=1)
    repo.expire(registration_id="reg-1", now=first)
    repo.expire(registration_id="reg-1", now=first + timedelta(hours=1))
    assert _user(engine, "reg-1").updated_at == first


def test_expire_of_an_active_account_is_refused(repo: RegistrationRepository) -> None:
    _create(repo)
    repo.activate(registration_id="reg-1", verified_at=T0)
    with pytest.raises(ValueError, match="active"):
        repo.expire(registration_id="reg-1", now=T0)


def test_expire_of_an_unknown_registration_raises_lookup_error(
    repo: RegistrationRepository,
) -> None:
    with pytest.raises(LookupError):
        repo.expire(registration_id="nope", now=T0)


# Activation --------------------------------------------------------------------------------


def test_activate_is_idempotent_and_keeps_the_first_verification_time(
    repo: RegistrationRepository,
) -> None:
    _create(repo)
    first = repo.activate(registration_id="reg-1", verified_at=T0 + timedelta(minutes=5))
    second = repo.activate(registration_id="reg-1", verified_at=T0 + timedelta(minutes=9))
    assert first.status is RegistrationStatus.ACTIVE
    assert second.status is RegistrationStatus.ACTIVE
    assert first.verified_at == T0 + timedelta(minutes=5)
    assert second.verified_at == T0 + timedelta(minutes=5)


def test_activate_keeps_the_email_claim(repo: RegistrationRepository, engine: Engine) -> None:
    _create(repo)
    repo.activate(registration_id="reg-1", verified_at=T0)
    user = _user(engine, "reg-1")
    assert user.email_claim == EMAIL
    assert user.password_hash is not None


def test_activate_after_expiry_is_refused(repo: RegistrationRepository) -> None:
    _create(repo)
    repo.expire(registration_id="reg-1", now=T0)
    with pytest.raises(ValueError, match="expired"):
        repo.activate(registration_id="reg-1", verified_at=T0)
    record = repo.get_registration(registration_id="reg-1")
    assert record is not None
    assert record.status is RegistrationStatus.EXPIRED


# Deliveries --------------------------------------------------------------------------------


def test_delivery_attempts_only_grow(repo: RegistrationRepository) -> None:
    _create(repo)
    _attempt(repo, 1)
    _attempt(repo, 3)
    _attempt(repo, 2)  # a late repeat of an older attempt
    delivery = repo.get_delivery(delivery_id="reg-1.verification.1")
    assert delivery is not None
    assert delivery.attempts == 3
    assert delivery.status is DeliveryStatus.PENDING
    assert delivery.kind is EmailKind.VERIFICATION
    assert delivery.created_at == T0 + timedelta(seconds=1)


def test_attempt_after_sent_leaves_the_delivery_sent(repo: RegistrationRepository) -> None:
    _create(repo)
    _attempt(repo, 1)
    sent_at = T0 + timedelta(seconds=2)
    repo.mark_delivery_sent(delivery_id="reg-1.verification.1", sent_at=sent_at)

    assert _attempt(repo, 2) is DeliveryStatus.SENT

    delivery = repo.get_delivery(delivery_id="reg-1.verification.1")
    assert delivery is not None
    assert delivery.attempts == 1
    assert delivery.sent_at == sent_at


def test_mark_delivery_sent_is_idempotent(repo: RegistrationRepository) -> None:
    _create(repo)
    _attempt(repo, 1)
    repo.mark_delivery_sent(delivery_id="reg-1.verification.1", sent_at=T0)
    again = repo.mark_delivery_sent(
        delivery_id="reg-1.verification.1", sent_at=T0 + timedelta(minutes=1)
    )
    assert again.sent_at == T0


def test_mark_delivery_sent_of_an_unknown_delivery_raises(repo: RegistrationRepository) -> None:
    with pytest.raises(LookupError):
        repo.mark_delivery_sent(delivery_id="nope", sent_at=T0)


def test_mark_delivery_failed_records_the_reason(repo: RegistrationRepository) -> None:
    _create(repo)
    _attempt(repo, 4)
    failed = repo.mark_delivery_failed(
        delivery_id="reg-1.verification.1",
        registration_id="reg-1",
        kind=EmailKind.VERIFICATION,
        error="SMTPRecipientsRefused: 550 no such user",
        now=T0 + timedelta(hours=1),
    )
    assert failed.status is DeliveryStatus.FAILED
    assert failed.last_error == "SMTPRecipientsRefused: 550 no such user"
    assert failed.attempts == 4
    assert failed.sent_at is None
    # A failed delivery is final: a late attempt changes nothing.
    assert _attempt(repo, 5) is DeliveryStatus.FAILED


def test_mark_delivery_failed_creates_a_missing_delivery(repo: RegistrationRepository) -> None:
    _create(repo)
    failed = repo.mark_delivery_failed(
        delivery_id="reg-1.welcome.1",
        registration_id="reg-1",
        kind=EmailKind.WELCOME,
        error="boom",
        now=T0,
    )
    assert failed.status is DeliveryStatus.FAILED
    assert failed.kind is EmailKind.WELCOME
    assert failed.attempts == 0


def test_mark_delivery_failed_does_not_undo_a_sent_delivery(
    repo: RegistrationRepository,
) -> None:
    _create(repo)
    _attempt(repo, 1)
    repo.mark_delivery_sent(delivery_id="reg-1.verification.1", sent_at=T0)
    record = repo.mark_delivery_failed(
        delivery_id="reg-1.verification.1",
        registration_id="reg-1",
        kind=EmailKind.VERIFICATION,
        error="late failure report",
        now=T0 + timedelta(hours=1),
    )
    assert record.status is DeliveryStatus.SENT
    assert record.sent_at == T0
    assert record.last_error is None


def test_delivery_error_is_recorded_truncated_while_pending(
    repo: RegistrationRepository,
) -> None:
    _create(repo)
    _attempt(repo, 1)
    repo.record_delivery_error(delivery_id="reg-1.verification.1", error="x" * 5000, now=T0)
    delivery = repo.get_delivery(delivery_id="reg-1.verification.1")
    assert delivery is not None
    assert delivery.last_error == "x" * 2000
    assert delivery.status is DeliveryStatus.PENDING


def test_delivery_error_after_sent_is_ignored(repo: RegistrationRepository) -> None:
    _create(repo)
    _attempt(repo, 1)
    repo.mark_delivery_sent(delivery_id="reg-1.verification.1", sent_at=T0)
    repo.record_delivery_error(delivery_id="reg-1.verification.1", error="late", now=T0)
    delivery = repo.get_delivery(delivery_id="reg-1.verification.1")
    assert delivery is not None
    assert delivery.last_error is None


def test_registration_lists_deliveries_oldest_first(repo: RegistrationRepository) -> None:
    """Ordered by creation time, not by ID: the IDs here sort the other way round."""
    _create(repo)
    for delivery_id, kind, minutes in [
        ("z-first", EmailKind.VERIFICATION, 1),
        ("a-second", EmailKind.WELCOME, 2),
    ]:
        repo.record_delivery_attempt(
            delivery_id=delivery_id,
            registration_id="reg-1",
            kind=kind,
            attempt=1,
            now=T0 + timedelta(minutes=minutes),
        )
    record = repo.get_registration(registration_id="reg-1")
    assert record is not None
    assert [d.delivery_id for d in record.deliveries] == ["z-first", "a-second"]
    assert [d.kind for d in record.deliveries] == [EmailKind.VERIFICATION, EmailKind.WELCOME]


def test_deliveries_of_other_registrations_are_not_listed(repo: RegistrationRepository) -> None:
    _create(repo, "reg-1")
    _create(repo, "reg-2", email="bob@example.org")
    repo.record_delivery_attempt(
        delivery_id="reg-2.verification.1",
        registration_id="reg-2",
        kind=EmailKind.VERIFICATION,
        attempt=1,
        now=T0,
    )
    record = repo.get_registration(registration_id="reg-1")
    assert record is not None
    assert record.deliveries == []


def test_delivery_for_an_unknown_registration_violates_the_foreign_key(
    repo: RegistrationRepository,
) -> None:
    with pytest.raises(IntegrityError, match="FOREIGN KEY"):
        repo.record_delivery_attempt(
            delivery_id="ghost.verification.1",
            registration_id="ghost",
            kind=EmailKind.VERIFICATION,
            attempt=1,
            now=T0,
        )


# Tokens ------------------------------------------------------------------------------------


def test_registration_is_found_by_its_token_hash(repo: RegistrationRepository) -> None:
    _create(repo)
    repo.set_verification_token_hash(registration_id="reg-1", token_hash="a" * 64, now=T0)
    record = repo.find_by_token_hash(token_hash="a" * 64)
    assert record is not None
    assert record.registration_id == "reg-1"
    assert repo.find_by_token_hash(token_hash="b" * 64) is None


# Timestamps --------------------------------------------------------------------------------


def test_timestamps_come_back_as_aware_utc(repo: RegistrationRepository, engine: Engine) -> None:
    """SQLite keeps no offset; a +02:00 input must come back as the same instant in UTC."""
    cest = timezone(timedelta(hours=2))
    created_local = datetime(2030, 6, 1, 12, 0, tzinfo=cest)
    _create(repo, created_at=created_local)
    repo.activate(registration_id="reg-1", verified_at=created_local + timedelta(minutes=1))
    repo.record_delivery_attempt(
        delivery_id="reg-1.verification.1",
        registration_id="reg-1",
        kind=EmailKind.VERIFICATION,
        attempt=1,
        now=created_local,
    )
    repo.mark_delivery_sent(delivery_id="reg-1.verification.1", sent_at=created_local)

    record = repo.get_registration(registration_id="reg-1")
    assert record is not None
    stamps = [record.created_at, record.verified_at, record.expires_at]
    stamps += [record.deliveries[0].created_at, record.deliveries[0].sent_at]
    for stamp in stamps:
        assert stamp is not None
        assert stamp.tzinfo is UTC
    assert record.created_at == created_local
    assert record.created_at.hour == 10
    assert record.expires_at == created_local + timedelta(hours=24)
    with Session(engine) as session:
        delivery = session.get(EmailDelivery, "reg-1.verification.1")
        assert delivery is not None
        assert delivery.updated_at.tzinfo is UTC


def test_naive_timestamps_are_refused(repo: RegistrationRepository, engine: Engine) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        _create(repo, created_at=datetime(2030, 1, 1, 12, 0))
    assert _user_count(engine) == 0
