"""The email normal form and the password policy of RegisterUser."""

from __future__ import annotations

import pytest

from registration.domain.errors import FieldViolation
from registration.domain.validation import (
    MAX_EMAIL_LENGTH,
    common_passwords,
    for_field,
    normalize_email,
    password_violation,
    text_violation,
)

MIN = 12
MAX = 1024


def _accepted(raw: str) -> str:
    normalized, violation = normalize_email(raw)
    assert violation is None, violation
    assert normalized is not None
    return normalized


def _rejected(raw: str) -> FieldViolation:
    normalized, violation = normalize_email(raw)
    assert normalized is None
    assert violation is not None
    return violation


def _violation(password: str, email: str | None = "ann@example.org") -> FieldViolation | None:
    return password_violation(password, email=email, min_length=MIN, max_length=MAX)


# normalize_email ---------------------------------------------------------------------------


def test_email_is_lowercased_in_local_part_and_domain() -> None:
    assert _accepted("Ann.Lee@Example.ORG") == "ann.lee@example.org"


def test_differently_cased_addresses_normalize_to_the_same_account() -> None:
    assert _accepted("ANN@example.org") == _accepted("ann@EXAMPLE.org")


def test_internationalized_domain_is_accepted_and_kept_in_unicode() -> None:
    assert _accepted("user@bücher.de") == "user@bücher.de"
    assert _accepted("User@BÜCHER.de") == "user@bücher.de"


def test_surrounding_whitespace_is_stripped() -> None:
    assert _accepted("  \tann@example.org \n") == "ann@example.org"


@pytest.mark.parametrize("raw", ["", " ", "\t\n  "])
def test_empty_or_blank_email_is_required(raw: str) -> None:
    violation = _rejected(raw)
    assert violation.field == "email"
    assert violation.description == "is required"


@pytest.mark.parametrize("raw", ["ann.example.org", "ann@", "@example.org", "ann@@example.org"])
def test_malformed_email_is_rejected_on_the_email_field(raw: str) -> None:
    violation = _rejected(raw)
    assert violation.field == "email"
    assert violation.description


def test_email_longer_than_254_characters_is_rejected() -> None:
    domain = ".".join(["b" * 63] * 3) + ".com"  # 195 characters, every label legal
    raw = "a" * 64 + "@" + domain
    assert len(raw) > MAX_EMAIL_LENGTH
    assert _rejected(raw).field == "email"


def test_email_of_254_characters_or_fewer_is_accepted() -> None:
    domain = ".".join(["b" * 60] * 3) + ".com"
    raw = "a" * 64 + "@" + domain
    assert len(raw) <= MAX_EMAIL_LENGTH
    assert _accepted(raw) == raw


# password_violation ------------------------------------------------------------------------


def test_empty_password_is_required() -> None:
    violation = _violation("")
    assert violation == FieldViolation("password", "is required")


def test_password_one_below_minimum_is_too_short() -> None:
    violation = _violation("x" * (MIN - 1))
    assert violation is not None
    assert violation.field == "password"
    assert str(MIN) in violation.description


def test_password_one_above_maximum_is_too_long() -> None:
    violation = _violation("x" * (MAX + 1))
    assert violation is not None
    assert violation.field == "password"
    assert str(MAX) in violation.description


@pytest.mark.parametrize("length", [MIN, 64, MAX])
def test_passwords_within_the_bounds_are_accepted(length: int) -> None:
    assert _violation("x" * length) is None


def test_password_equal_to_the_email_is_rejected() -> None:
    violation = _violation("ann.lee@example.org", email="ann.lee@example.org")
    assert violation is not None
    assert violation.field == "password"


def test_password_equal_to_the_email_in_other_case_is_rejected() -> None:
    violation = _violation("Ann.Lee@EXAMPLE.org", email="ann.lee@example.org")
    assert violation is not None
    assert violation.field == "password"


def test_password_containing_the_email_is_not_equal_to_it() -> None:
    assert _violation("ann.lee@example.org!", email="ann.lee@example.org") is None


def test_email_check_is_skipped_without_an_email() -> None:
    assert _violation("ann.lee@example.org", email=None) is None


def test_no_composition_rules_apply() -> None:
    """NIST SP 800-63B: no digits, capitals or symbols are demanded."""
    assert _violation("correct horse battery staple") is None
    assert _violation("abcdefghijklmnop") is None


@pytest.mark.parametrize(
    "password", ["password1234", "Password1234", "123qweasdzxc", "1q2w3e4r5t6y"]
)
def test_passwords_from_the_bundled_common_list_are_rejected(password: str) -> None:
    violation = password_violation(password, email=None, min_length=12, max_length=1024)
    assert violation is not None
    assert violation.field == "password"
    assert "common" in violation.description


def test_bundled_list_is_large_and_case_folded() -> None:
    passwords = common_passwords()
    assert len(passwords) > 10_000
    assert all(p == p.casefold() for p in passwords)


@pytest.mark.parametrize(
    ("value", "required", "expected"),
    [
        ("Pottery for Beginners", True, None),
        ("Zoë Ćwikła 渡辺", True, None),
        ("", False, None),
        ("   ", True, "is required"),
        ("x" * 201, True, "must be at most 200 characters"),
        ("Eddie\nBcc: everyone@example.com", True, "must not contain control characters"),
        ("tab\there", True, "must not contain control characters"),
        ("line\u2028separator", True, "must not contain control characters"),
    ],
)
def test_a_line_of_text_is_bounded_and_has_no_control_characters(
    value: str, required: bool, expected: str | None
) -> None:

    violation = text_violation("name", value, max_length=200, required=required)
    if expected is None:
        assert violation is None
    else:
        assert violation is not None and violation.field == "name"
        assert violation.description.startswith(expected)


def test_a_rule_is_named_after_the_requests_own_field() -> None:

    renamed = for_field(FieldViolation("password", "is too short"), "new_password")
    assert renamed == FieldViolation("new_password", "is too short")
    assert for_field(None, "new_password") is None
