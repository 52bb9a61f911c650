"""Pseudonymous workflow IDs, registration IDs and verification tokens."""

from __future__ import annotations

import re

import pytest

from registration.domain.identifiers import (
    WORKFLOW_ID_PREFIX,
    derive_token,
    email_key,
    hash_token,
    is_notification_id,
    is_registration_id,
    is_token,
    new_registration_id,
    new_reset_id,
    notification_id_for_order,
    password_reset_workflow_id,
    workflow_id_for_email_key,
    workflow_id_for_notification,
    workflow_id_for_registration,
    workflow_id_for_reset,
)

KEY = b"unit-test-secret-key"
OTHER_KEY = b"another-secret-key"
EMAIL = "ann.lee@example.org"


def test_email_key_is_deterministic() -> None:
    assert email_key(KEY, EMAIL) == email_key(KEY, EMAIL)


def test_email_key_depends_on_the_secret_key() -> None:
    assert email_key(KEY, EMAIL) != email_key(OTHER_KEY, EMAIL)


def test_email_key_depends_on_the_email() -> None:
    assert email_key(KEY, EMAIL) != email_key(KEY, "bob@example.org")


def test_email_key_does_not_reveal_the_email() -> None:
    key = email_key(KEY, EMAIL)
    workflow_id = workflow_id_for_email_key(key)
    for part in ("ann", "lee", "example", "@"):
        assert part not in key
        assert part not in workflow_id


def test_email_key_is_26_lowercase_base32_characters() -> None:
    assert re.fullmatch(r"[a-z2-7]{26}", email_key(KEY, EMAIL))


def test_registration_id_leads_to_the_workflow_of_its_email() -> None:
    key = email_key(KEY, EMAIL)
    registration_id = new_registration_id(key)
    assert workflow_id_for_registration(registration_id) == workflow_id_for_email_key(key)
    assert workflow_id_for_email_key(key) == WORKFLOW_ID_PREFIX + key


def test_new_registration_ids_are_unique_and_valid() -> None:
    key = email_key(KEY, EMAIL)
    first, second = new_registration_id(key), new_registration_id(key)
    assert first != second
    assert is_registration_id(first)
    assert is_registration_id(second)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        "registration-abc",
        email_key(KEY, EMAIL),  # the key alone, without a nonce
        email_key(KEY, EMAIL) + "_",
        email_key(KEY, EMAIL) + "_0123456789abcdeg",  # 'g' is no hex digit
        email_key(KEY, EMAIL) + "_0123456789abcdef0",  # one hex digit too many
        email_key(KEY, EMAIL).upper() + "_0123456789abcdef",
        " " + email_key(KEY, EMAIL) + "_0123456789abcdef",
        email_key(KEY, EMAIL) + "_0123456789abcdef\n",  # "$" alone would let it through
    ],
)
def test_is_registration_id_rejects_garbage(value: str) -> None:
    assert not is_registration_id(value)


@pytest.mark.parametrize(
    "value", ["not-a-registration-id", email_key(KEY, EMAIL) + "_0123456789abcdef\n"]
)
def test_workflow_id_for_registration_rejects_garbage(value: str) -> None:
    with pytest.raises(ValueError):
        workflow_id_for_registration(value)


def test_token_is_deterministic_per_key_and_delivery() -> None:
    assert derive_token(KEY, "reg.verification.1") == derive_token(KEY, "reg.verification.1")


def test_token_differs_across_deliveries() -> None:
    assert derive_token(KEY, "reg.verification.1") != derive_token(KEY, "reg.verification.2")


def test_token_differs_across_secret_keys() -> None:
    assert derive_token(KEY, "reg.verification.1") != derive_token(OTHER_KEY, "reg.verification.1")


def test_token_is_shell_and_url_safe() -> None:
    token = derive_token(KEY, "reg.verification.1")
    assert re.fullmatch(r"[a-z2-7]{52}", token)
    assert "-" not in token
    assert is_token(token)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "a" * 51,
        "a" * 53,
        "A" * 52,
        "1" * 52,
        "a" * 51 + "-",
        "a" * 52 + "\n",  # "$" alone would let it through
    ],
)
def test_is_token_rejects_malformed_values(value: str) -> None:
    assert not is_token(value)


def test_token_hash_is_sha256_hex_and_not_the_token() -> None:
    token = derive_token(KEY, "reg.verification.1")
    digest = hash_token(token)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert digest != token
    assert digest == hash_token(token)
    assert digest != hash_token(derive_token(KEY, "reg.verification.2"))


def test_a_token_for_one_purpose_is_never_the_token_for_another() -> None:

    key = b"k" * 32
    verify = derive_token(key, "d.1")
    reset = derive_token(key, "d.1", purpose="reset")
    assert verify != reset
    assert verify == derive_token(key, "d.1", purpose="verify")
    assert is_token(verify) and is_token(reset)


def test_every_delivery_of_one_order_gets_one_notification_id() -> None:

    first = notification_id_for_order("order-1042")
    assert first == notification_id_for_order("order-1042")
    assert first != notification_id_for_order("order-1043")
    assert is_notification_id(first)
    assert not is_notification_id(first + "\n")
    assert workflow_id_for_notification(first) == f"enrollment-{first}"


def test_a_reset_id_leads_to_the_reset_workflow_of_its_address() -> None:

    key = email_key(b"k" * 32, "ann@example.org")
    reset_id = new_reset_id(key)
    assert reset_id != new_reset_id(key)
    assert workflow_id_for_reset(reset_id) == password_reset_workflow_id(key)
    assert password_reset_workflow_id(key) == f"password-reset-{key}"
    with pytest.raises(ValueError):
        workflow_id_for_reset("nonsense")
