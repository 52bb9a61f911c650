"""RegistrationRepository against a real SQLite file: every write is idempotent."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, StatementError
from sqlmodel import Session, select

from registration.adapters.db.deliveries import DeliveryRepository
from registration.adapters.db.registrations import (
    CreateOutcome,
    NewVerification,
    RegistrationRepository,
)
from registration.adapters.db.tables import EmailDelivery, User
from registration.domain.email_kinds import EmailKind
from registration.domain.records import DeliveryOwner, DeliveryRecord
from registration.domain.statuses import DeliveryStatus, RegistrationStatus

EMAIL = "ann@example.org"
T0 = datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
FIRST = "reg-1.verification.1"
SECOND = "reg-1.verification.2"


@pytest.fixture
def repo(engine: Engine) -> RegistrationRepository:
    return RegistrationRepository(engine)


@pytest.fixture
def deliveries(engine: Engine) -> DeliveryRepository:
    return DeliveryRepository(engine)


def _create(
    repo: RegistrationRepository,
    registration_id: str = "reg-1",
    *,
    email: str = EMAIL,
    user_id: uuid.UUID | None = None,
    created_at: datetime = T0,
    verification: NewVerification | None = None,
) -> CreateOutcome:
    return repo.create_pending_user(
        user_id=user_id or uuid.uuid5(uuid.NAMESPACE_URL, registration_id),
        registration_id=registration_id,
        email=email,
        password_hash="$argon2id$fake-hash",
        created_at=created_at,
        expires_at=created_at + timedelta(hours=24),
        verification=verification,
    )


def _verification(
    delivery_id: str = FIRST,
    token_hash: str = "a" * 64,
    *,
    next_resend_at: datetime | None = T0 + timedelta(minutes=1),
    resends_remaining: int = 5,
) -> NewVerification:
    return NewVerification(
        delivery_id=delivery_id,
        token_hash=token_hash,
        next_resend_at=next_resend_at,
        resends_remaining=resends_remaining,
    )


def _user(engine: Engine, registration_id: str) -> User:
    with Session(engine) as session:
        return session.exec(select(User).where(User.registration_id == registration_id)).one()


def _user_count(engine: Engine) -> int:
    with Session(engine) as session:
        return len(session.exec(select(User)).all())


def _open(
    deliveries: DeliveryRepository,
    delivery_id: str = FIRST,
    *,
    registration_id: str = "reg-1",
    kind: EmailKind = EmailKind.VERIFICATION,
    now: datetime = T0,
) -> DeliveryRecord:
    return deliveries.open_delivery(
        delivery_id=delivery_id,
        owner=DeliveryOwner(registration_id=registration_id),
        kind=kind,
        now=now,
    )


def _attempt(
    deliveries: DeliveryRepository,
    delivery_id: str = FIRST,
    *,
    message_id: str = "<reg-1.verification.1@acme.test>",
    now: datetime = T0,
) -> DeliveryRecord:
    return deliveries.count_attempt(delivery_id=delivery_id, message_id=message_id, now=now)


def _fail(
    deliveries: DeliveryRepository,
    error: str,
    delivery_id: str = FIRST,
    *,
    kind: EmailKind = EmailKind.VERIFICATION,
    now: datetime = T0,
) -> DeliveryRecord:
    return deliveries.mark_delivery_failed(
        delivery_id=delivery_id,
        owner=DeliveryOwner(registration_id="reg-1"),
        kind=kind,
        error=error,
        now=now,
    )


def _delivery(deliveries: DeliveryRepository, delivery_id: str = FIRST) -> DeliveryRecord:
    delivery = deliveries.get_delivery(delivery_id=delivery_id)
    assert delivery is not None
    return delivery


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
    assert record.next_resend_allowed_at is None
    assert record.resends_remaining == 0
    user = _user(engine, "reg-1")
    assert user.email_claim == EMAIL
    assert user.password_hash == "$argon2id$fake-hash"
    assert user.verification_token_hash is None


def test_create_pending_user_with_a_verification_makes_its_delivery_and_link(
    repo: RegistrationRepository, engine: Engine
) -> None:
    assert _create(repo, verification=_verification()) is CreateOutcome.CREATED

    record = repo.get_registration(registration_id="reg-1")
    assert record is not None
    assert record.next_resend_allowed_at == T0 + timedelta(minutes=1)
    assert record.resends_remaining == 5
    [delivery] = record.deliveries
    assert delivery.delivery_id == FIRST
    assert delivery.kind is EmailKind.VERIFICATION
    assert delivery.status is DeliveryStatus.PENDING
    assert delivery.attempts == 0
    assert delivery.message_id is None
    assert delivery.last_error is None
    assert delivery.sent_at is None
    assert delivery.created_at == T0
    assert _user(engine, "reg-1").verification_token_hash == "a" * 64
    found = repo.find_by_token_hash(token_hash="a" * 64)
    assert found is not None
    assert found.registration_id == "reg-1"
    assert repo.link_is_live(registration_id="reg-1", token_hash="a" * 64)


def test_create_pending_user_is_idempotent(repo: RegistrationRepository, engine: Engine) -> None:
    assert _create(repo) is CreateOutcome.CREATED
    assert _create(repo) is CreateOutcome.CREATED
    assert _user_count(engine) == 1


def test_create_pending_user_with_a_verification_is_idempotent(
    repo: RegistrationRepository, engine: Engine, deliveries: DeliveryRepository
) -> None:
    assert _create(repo, verification=_verification()) is CreateOutcome.CREATED
    _attempt(deliveries)
    assert _create(repo, verification=_verification()) is CreateOutcome.CREATED
    assert _user_count(engine) == 1
    record = repo.get_registration(registration_id="reg-1")
    assert record is not None
    assert [(d.delivery_id, d.attempts) for d in record.deliveries] == [(FIRST, 1)]
    assert _user(engine, "reg-1").verification_token_hash == "a" * 64


def test_second_registration_for_a_pending_email_is_refused(
    repo: RegistrationRepository, engine: Engine
) -> None:
    assert _create(repo, "reg-1") is CreateOutcome.CREATED
    assert _create(repo, "reg-2") is CreateOutcome.EMAIL_TAKEN
    assert _user_count(engine) == 1
    assert repo.get_registration(registration_id="reg-2") is None


def test_a_refused_registration_leaves_no_delivery_and_no_link(
    repo: RegistrationRepository, engine: Engine, deliveries: DeliveryRepository
) -> None:
    """The first delivery is written with the user or not at all."""
    assert _create(repo, "reg-1", verification=_verification()) is CreateOutcome.CREATED
    refused = _create(repo, "reg-2", verification=_verification("reg-2.verification.1", "b" * 64))
    assert refused is CreateOutcome.EMAIL_TAKEN
    assert _user_count(engine) == 1
    assert deliveries.get_delivery(delivery_id="reg-2.verification.1") is None
    assert repo.find_by_token_hash(token_hash="b" * 64) is None
    with Session(engine) as session:
        assert len(session.exec(select(EmailDelivery)).all()) == 1


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
    assert repo.live_registration_id(email=EMAIL) == "reg-2"


def test_the_live_registration_of_an_address_is_never_an_expired_one(
    repo: RegistrationRepository,
) -> None:
    _create(repo, "reg-1")
    assert repo.live_registration_id(email=EMAIL) == "reg-1"
    repo.expire(registration_id="reg-1", now=T0)
    assert repo.live_registration_id(email=EMAIL) is None


def test_an_active_account_holds_its_address(repo: RegistrationRepository) -> None:
    _create(repo, "reg-1")
    repo.activate(registration_id="reg-1", verified_at=T0)
    assert repo.live_registration_id(email=EMAIL) == "reg-1"
    assert repo.live_registration_id(email="someone.else@example.org") is None


def test_unknown_registration_is_none(repo: RegistrationRepository) -> None:
    assert repo.get_registration(registration_id="nope") is None


# Expiry ------------------------------------------------------------------------------------


def test_expire_erases_password_and_claim_but_keeps_token_hash(
    repo: RegistrationRepository, engine: Engine
) -> None:
    _create(repo, verification=_verification(token_hash="f" * 64))
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
    _create(repo, verification=_verification(token_hash="f" * 64))
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
    assert first == second == T0 + timedelta(minutes=5)
    record = repo.get_registration(registration_id="reg-1")
    assert record is not None
    assert record.status is RegistrationStatus.ACTIVE
    assert record.verified_at == T0 + timedelta(minutes=5)


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


def test_activate_of_an_unknown_registration_raises_lookup_error(
    repo: RegistrationRepository,
) -> None:
    with pytest.raises(LookupError):
        repo.activate(registration_id="nope", verified_at=T0)


# Resends and live links --------------------------------------------------------------------


def _resend(
    repo: RegistrationRepository,
    delivery_id: str = SECOND,
    token_hash: str = "b" * 64,
    *,
    now: datetime = T0 + timedelta(minutes=2),
    resends_remaining: int = 4,
) -> None:
    repo.start_new_verification(
        registration_id="reg-1",
        verification=_verification(
            delivery_id,
            token_hash,
            next_resend_at=now + timedelta(minutes=1),
            resends_remaining=resends_remaining,
        ),
        now=now,
    )


def test_start_new_verification_replaces_the_link(
    repo: RegistrationRepository, engine: Engine
) -> None:
    _create(repo, verification=_verification())
    later = T0 + timedelta(minutes=2)

    _resend(repo, now=later)

    assert repo.find_by_token_hash(token_hash="a" * 64) is None
    found = repo.find_by_token_hash(token_hash="b" * 64)
    assert found is not None
    assert found.registration_id == "reg-1"
    assert found.status is RegistrationStatus.PENDING_VERIFICATION
    assert found.next_resend_allowed_at == later + timedelta(minutes=1)
    assert found.resends_remaining == 4
    assert [(d.delivery_id, d.kind, d.status, d.attempts) for d in found.deliveries] == [
        (FIRST, EmailKind.VERIFICATION, DeliveryStatus.PENDING, 0),
        (SECOND, EmailKind.VERIFICATION, DeliveryStatus.PENDING, 0),
    ]
    assert found.deliveries[1].created_at == later
    assert _user(engine, "reg-1").updated_at == later


def test_start_new_verification_is_idempotent(
    repo: RegistrationRepository, engine: Engine, deliveries: DeliveryRepository
) -> None:
    _create(repo, verification=_verification())
    _resend(repo)
    _attempt(deliveries, SECOND, message_id="<second@acme.test>")
    _resend(repo)

    record = repo.find_by_token_hash(token_hash="b" * 64)
    assert record is not None
    assert record.resends_remaining == 4
    assert [(d.delivery_id, d.attempts) for d in record.deliveries] == [(FIRST, 0), (SECOND, 1)]
    with Session(engine) as session:
        assert len(session.exec(select(EmailDelivery)).all()) == 2


def test_a_resend_without_resends_left_clears_the_next_resend_time(
    repo: RegistrationRepository,
) -> None:
    _create(repo, verification=_verification())
    repo.start_new_verification(
        registration_id="reg-1",
        verification=_verification(SECOND, "b" * 64, next_resend_at=None, resends_remaining=0),
        now=T0 + timedelta(minutes=2),
    )
    record = repo.get_registration(registration_id="reg-1")
    assert record is not None
    assert record.next_resend_allowed_at is None
    assert record.resends_remaining == 0


def test_start_new_verification_of_an_active_registration_is_refused(
    repo: RegistrationRepository,
    deliveries: DeliveryRepository,
) -> None:
    _create(repo, verification=_verification())
    repo.activate(registration_id="reg-1", verified_at=T0)
    with pytest.raises(ValueError, match="ACTIVE"):
        _resend(repo)
    assert deliveries.get_delivery(delivery_id=SECOND) is None
    assert repo.find_by_token_hash(token_hash="a" * 64) is not None
    assert repo.find_by_token_hash(token_hash="b" * 64) is None


def test_start_new_verification_of_an_expired_registration_is_refused(
    repo: RegistrationRepository,
    deliveries: DeliveryRepository,
) -> None:
    _create(repo, verification=_verification())
    repo.expire(registration_id="reg-1", now=T0)
    with pytest.raises(ValueError, match="EXPIRED"):
        _resend(repo)
    assert deliveries.get_delivery(delivery_id=SECOND) is None
    assert repo.find_by_token_hash(token_hash="b" * 64) is None


def test_start_new_verification_of_an_unknown_registration_raises_lookup_error(
    repo: RegistrationRepository,
) -> None:
    with pytest.raises(LookupError):
        _resend(repo)


def test_the_link_is_live_while_pending_and_current(repo: RegistrationRepository) -> None:
    _create(repo, verification=_verification())
    assert repo.link_is_live(registration_id="reg-1", token_hash="a" * 64)
    assert not repo.link_is_live(registration_id="reg-1", token_hash="b" * 64)
    assert not repo.link_is_live(registration_id="other", token_hash="a" * 64)


def test_a_registration_without_a_link_has_no_live_link(repo: RegistrationRepository) -> None:
    _create(repo)
    assert not repo.link_is_live(registration_id="reg-1", token_hash="a" * 64)


def test_a_resend_kills_the_old_link_and_makes_the_new_one_live(
    repo: RegistrationRepository,
) -> None:
    _create(repo, verification=_verification())
    _resend(repo)
    assert not repo.link_is_live(registration_id="reg-1", token_hash="a" * 64)
    assert repo.link_is_live(registration_id="reg-1", token_hash="b" * 64)


def test_no_link_is_live_after_activation(repo: RegistrationRepository) -> None:
    _create(repo, verification=_verification())
    repo.activate(registration_id="reg-1", verified_at=T0)
    assert not repo.link_is_live(registration_id="reg-1", token_hash="a" * 64)


def test_no_link_is_live_after_expiry(repo: RegistrationRepository) -> None:
    _create(repo, verification=_verification())
    repo.expire(registration_id="reg-1", now=T0)
    assert not repo.link_is_live(registration_id="reg-1", token_hash="a" * 64)


# Deliveries --------------------------------------------------------------------------------


def test_open_delivery_creates_a_pending_delivery(
    repo: RegistrationRepository, deliveries: DeliveryRepository
) -> None:
    _create(repo)
    opened = _open(deliveries, "reg-1.welcome.1", kind=EmailKind.WELCOME, now=T0)
    assert opened.delivery_id == "reg-1.welcome.1"
    assert opened.kind is EmailKind.WELCOME
    assert opened.status is DeliveryStatus.PENDING
    assert opened.attempts == 0
    assert opened.message_id is None
    assert opened.created_at == T0
    assert _delivery(deliveries, "reg-1.welcome.1") == opened


def test_open_delivery_returns_the_existing_record_unchanged(
    repo: RegistrationRepository,
    deliveries: DeliveryRepository,
) -> None:
    _create(repo, verification=_verification())
    _attempt(deliveries)
    deliveries.record_delivery_error(delivery_id=FIRST, error="451 greylisted", now=T0)

    again = _open(deliveries, FIRST, now=T0 + timedelta(hours=1))

    assert again.created_at == T0
    assert again.attempts == 1
    assert again.last_error == "451 greylisted"
    assert again == _delivery(deliveries)


def test_open_delivery_returns_an_ended_delivery_as_it_is(
    repo: RegistrationRepository, deliveries: DeliveryRepository
) -> None:
    _create(repo)
    _open(deliveries)
    deliveries.mark_delivery_sent(delivery_id=FIRST, sent_at=T0)
    assert _open(deliveries, now=T0 + timedelta(hours=1)).status is DeliveryStatus.SENT
    _fail(deliveries, "gave up", delivery_id="reg-1.welcome.1", kind=EmailKind.WELCOME)
    assert _open(deliveries, "reg-1.welcome.1", kind=EmailKind.WELCOME).status is (
        DeliveryStatus.FAILED
    )


def test_count_attempt_counts_each_try_and_keeps_the_first_message_id(
    repo: RegistrationRepository, engine: Engine, deliveries: DeliveryRepository
) -> None:
    _create(repo)
    _open(deliveries)
    first = _attempt(deliveries, message_id="<one@acme.test>", now=T0 + timedelta(seconds=1))
    second = _attempt(deliveries, message_id="<two@acme.test>", now=T0 + timedelta(seconds=2))
    third = _attempt(deliveries, message_id="<three@acme.test>", now=T0 + timedelta(seconds=3))

    assert [r.attempts for r in (first, second, third)] == [1, 2, 3]
    assert {r.message_id for r in (first, second, third)} == {"<one@acme.test>"}
    delivery = _delivery(deliveries)
    assert delivery.attempts == 3
    assert delivery.message_id == "<one@acme.test>"
    assert delivery.status is DeliveryStatus.PENDING
    assert delivery.kind is EmailKind.VERIFICATION
    assert delivery.created_at == T0
    with Session(engine) as session:
        row = session.get(EmailDelivery, FIRST)
        assert row is not None
        assert row.updated_at == T0 + timedelta(seconds=3)


def test_count_attempt_of_an_unknown_delivery_raises_lookup_error(
    repo: RegistrationRepository,
    deliveries: DeliveryRepository,
) -> None:
    with pytest.raises(LookupError):
        _attempt(deliveries, "nope")


def test_attempt_after_sent_leaves_the_delivery_sent(
    repo: RegistrationRepository, deliveries: DeliveryRepository
) -> None:
    _create(repo)
    _open(deliveries)
    _attempt(deliveries, message_id="<one@acme.test>")
    sent_at = T0 + timedelta(seconds=2)
    deliveries.mark_delivery_sent(delivery_id=FIRST, sent_at=sent_at)

    late = _attempt(deliveries, message_id="<late@acme.test>", now=T0 + timedelta(seconds=3))

    assert late.status is DeliveryStatus.SENT
    delivery = _delivery(deliveries)
    assert delivery.attempts == 1
    assert delivery.sent_at == sent_at
    assert delivery.message_id == "<one@acme.test>"


def test_attempt_after_failed_leaves_the_delivery_failed(
    repo: RegistrationRepository, deliveries: DeliveryRepository
) -> None:
    _create(repo)
    _open(deliveries)
    _fail(deliveries, "registration expired before the email was sent")
    late = _attempt(deliveries, message_id="<late@acme.test>")
    assert late.status is DeliveryStatus.FAILED
    assert late.attempts == 0
    assert late.message_id is None


def test_mark_delivery_sent_is_idempotent(
    repo: RegistrationRepository, deliveries: DeliveryRepository
) -> None:
    _create(repo)
    _open(deliveries)
    _attempt(deliveries)
    deliveries.mark_delivery_sent(delivery_id=FIRST, sent_at=T0)
    again = deliveries.mark_delivery_sent(delivery_id=FIRST, sent_at=T0 + timedelta(minutes=1))
    assert again.sent_at == T0
    assert again.attempts == 1


def test_mark_delivery_sent_of_an_unknown_delivery_raises(
    repo: RegistrationRepository, deliveries: DeliveryRepository
) -> None:
    with pytest.raises(LookupError):
        deliveries.mark_delivery_sent(delivery_id="nope", sent_at=T0)


def test_mark_delivery_sent_does_not_revive_a_failed_delivery(
    repo: RegistrationRepository,
    deliveries: DeliveryRepository,
) -> None:
    _create(repo)
    _open(deliveries)
    _fail(deliveries, "replaced by a resend")
    record = deliveries.mark_delivery_sent(delivery_id=FIRST, sent_at=T0 + timedelta(seconds=1))
    assert record.status is DeliveryStatus.FAILED
    assert record.sent_at is None


def test_mark_delivery_failed_records_the_reason(
    repo: RegistrationRepository, deliveries: DeliveryRepository
) -> None:
    _create(repo)
    _open(deliveries)
    for _ in range(4):
        _attempt(deliveries)
    failed = _fail(
        deliveries, "SMTPRecipientsRefused: 550 no such user", now=T0 + timedelta(hours=1)
    )
    assert failed.status is DeliveryStatus.FAILED
    assert failed.last_error == "SMTPRecipientsRefused: 550 no such user"
    assert failed.attempts == 4
    assert failed.sent_at is None
    assert failed == _delivery(deliveries)
    # A failed delivery is final: a late attempt changes nothing.
    assert _attempt(deliveries).status is DeliveryStatus.FAILED
    assert _delivery(deliveries).attempts == 4


def test_mark_delivery_failed_is_idempotent(
    repo: RegistrationRepository, deliveries: DeliveryRepository
) -> None:
    _create(repo)
    _open(deliveries)
    first = _fail(deliveries, "first reason")
    again = _fail(deliveries, "second reason", now=T0 + timedelta(hours=1))
    assert again == first
    assert again.last_error == "first reason"


def test_mark_delivery_failed_creates_a_missing_delivery(
    repo: RegistrationRepository, deliveries: DeliveryRepository
) -> None:
    _create(repo)
    failed = _fail(deliveries, "boom", delivery_id="reg-1.welcome.1", kind=EmailKind.WELCOME)
    assert failed.status is DeliveryStatus.FAILED
    assert failed.kind is EmailKind.WELCOME
    assert failed.attempts == 0
    assert failed.last_error == "boom"


def test_mark_delivery_failed_does_not_undo_a_sent_delivery(
    repo: RegistrationRepository,
    deliveries: DeliveryRepository,
) -> None:
    _create(repo)
    _open(deliveries)
    _attempt(deliveries)
    deliveries.mark_delivery_sent(delivery_id=FIRST, sent_at=T0)
    record = _fail(deliveries, "late failure report", now=T0 + timedelta(hours=1))
    assert record.status is DeliveryStatus.SENT
    assert record.sent_at == T0
    assert record.last_error is None
    assert record.attempts == 1


def test_delivery_error_is_recorded_truncated_while_pending(
    repo: RegistrationRepository,
    deliveries: DeliveryRepository,
) -> None:
    _create(repo)
    _open(deliveries)
    _attempt(deliveries)
    deliveries.record_delivery_error(delivery_id=FIRST, error="x" * 5000, now=T0)
    delivery = _delivery(deliveries)
    assert delivery.last_error == "x" * 2000
    assert delivery.status is DeliveryStatus.PENDING
    assert delivery.attempts == 1


def test_delivery_error_after_sent_is_ignored(
    repo: RegistrationRepository, deliveries: DeliveryRepository
) -> None:
    _create(repo)
    _open(deliveries)
    _attempt(deliveries)
    deliveries.mark_delivery_sent(delivery_id=FIRST, sent_at=T0)
    deliveries.record_delivery_error(delivery_id=FIRST, error="late", now=T0)
    assert _delivery(deliveries).last_error is None


def test_delivery_error_after_failed_keeps_the_final_reason(
    repo: RegistrationRepository,
    deliveries: DeliveryRepository,
) -> None:
    _create(repo)
    _open(deliveries)
    _fail(deliveries, "final reason")
    deliveries.record_delivery_error(delivery_id=FIRST, error="late", now=T0)
    assert _delivery(deliveries).last_error == "final reason"


def test_delivery_error_of_an_unknown_delivery_is_ignored(
    repo: RegistrationRepository, deliveries: DeliveryRepository
) -> None:
    deliveries.record_delivery_error(delivery_id="nope", error="late", now=T0)
    assert deliveries.get_delivery(delivery_id="nope") is None


def test_registration_lists_deliveries_oldest_first(
    repo: RegistrationRepository, deliveries: DeliveryRepository
) -> None:
    """Ordered by creation time, not by ID: the IDs here sort the other way round."""
    _create(repo)
    _open(deliveries, "z-first", kind=EmailKind.VERIFICATION, now=T0 + timedelta(minutes=1))
    _open(deliveries, "a-second", kind=EmailKind.WELCOME, now=T0 + timedelta(minutes=2))
    record = repo.get_registration(registration_id="reg-1")
    assert record is not None
    assert [d.delivery_id for d in record.deliveries] == ["z-first", "a-second"]
    assert [d.kind for d in record.deliveries] == [EmailKind.VERIFICATION, EmailKind.WELCOME]


def test_deliveries_of_other_registrations_are_not_listed(
    repo: RegistrationRepository, deliveries: DeliveryRepository
) -> None:
    _create(repo, "reg-1")
    _create(repo, "reg-2", email="bob@example.org")
    _open(deliveries, "reg-2.verification.1", registration_id="reg-2")
    record = repo.get_registration(registration_id="reg-1")
    assert record is not None
    assert record.deliveries == []


def test_delivery_for_an_unknown_registration_violates_the_foreign_key(
    repo: RegistrationRepository,
    deliveries: DeliveryRepository,
) -> None:
    with pytest.raises(IntegrityError, match=r"(?i)foreign key"):
        _open(deliveries, "ghost.verification.1", registration_id="ghost")
    assert deliveries.get_delivery(delivery_id="ghost.verification.1") is None


# Tokens ------------------------------------------------------------------------------------


def test_registration_is_found_by_its_token_hash(repo: RegistrationRepository) -> None:
    _create(repo, verification=_verification(token_hash="a" * 64))
    record = repo.find_by_token_hash(token_hash="a" * 64)
    assert record is not None
    assert record.registration_id == "reg-1"
    assert repo.find_by_token_hash(token_hash="b" * 64) is None


# Timestamps --------------------------------------------------------------------------------


def test_timestamps_come_back_as_aware_utc(
    repo: RegistrationRepository, engine: Engine, deliveries: DeliveryRepository
) -> None:
    """SQLite keeps no offset; a +02:00 input must come back as the same instant in UTC."""
    cest = timezone(timedelta(hours=2))
    created_local = datetime(2030, 6, 1, 12, 0, tzinfo=cest)
    _create(
        repo,
        created_at=created_local,
        verification=_verification(next_resend_at=created_local + timedelta(minutes=1)),
    )
    _attempt(deliveries, now=created_local)
    deliveries.mark_delivery_sent(delivery_id=FIRST, sent_at=created_local)
    repo.activate(registration_id="reg-1", verified_at=created_local + timedelta(minutes=1))

    record = repo.get_registration(registration_id="reg-1")
    assert record is not None
    stamps = [record.created_at, record.verified_at, record.expires_at]
    stamps += [record.next_resend_allowed_at]
    stamps += [record.deliveries[0].created_at, record.deliveries[0].sent_at]
    for stamp in stamps:
        assert stamp is not None
        assert stamp.tzinfo is UTC
    assert record.created_at == created_local
    assert record.created_at.hour == 10
    assert record.expires_at == created_local + timedelta(hours=24)
    assert record.next_resend_allowed_at == created_local + timedelta(minutes=1)
    with Session(engine) as session:
        delivery = session.get(EmailDelivery, FIRST)
        assert delivery is not None
        assert delivery.updated_at.tzinfo is UTC


def test_naive_timestamps_are_refused(repo: RegistrationRepository, engine: Engine) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        _create(repo, created_at=datetime(2030, 1, 1, 12, 0))
    assert _user_count(engine) == 0
