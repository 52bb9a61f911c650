"""The email normal form and the password policy of RegisterUser (NIST SP 800-63B rev 4)."""

from __future__ import annotations

import pytest

from registration.domain.errors import FieldViolation
from registration.domain.validation import (
    MAX_EMAIL_LENGTH,
    for_field,
    normalize_email,
    normalize_password,
    password_violation,
    text_violation,
)

MIN = 15
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


def _violation(password: str) -> FieldViolation | None:
    return password_violation(
        password, context=["Acme", "ann@example.org", "ann"], min_length=MIN, max_length=MAX
    )


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


def _phrase(length: int) -> str:
    """A password of `length` characters that is no repetition, no run and no leaked one."""
    words = "violet tundra ember quartz lantern meadow copper harbor"
    return (words * (length // len(words) + 1))[:length]


def test_empty_password_is_required() -> None:
    violation = _violation("")
    assert violation == FieldViolation("password", "is required")


def test_password_one_below_minimum_is_too_short() -> None:
    violation = _violation(_phrase(MIN - 1))
    assert violation is not None
    assert violation.field == "password"
    assert str(MIN) in violation.description


def test_password_one_above_maximum_is_too_long() -> None:
    violation = _violation(_phrase(MAX + 1))
    assert violation is not None
    assert violation.field == "password"
    assert str(MAX) in violation.description


@pytest.mark.parametrize("length", [MIN, 64, MAX])
def test_passwords_within_the_bounds_are_accepted(length: int) -> None:
    assert _violation(_phrase(length)) is None


def test_the_length_counts_characters_of_the_normal_form() -> None:
    # "é" typed as e and a combining accent is two code points, one character once normalized.
    typed = "cre\u0300me bru\u0302le\u0301e"
    assert len(typed) == 15 and len(normalize_password(typed)) == 12
    assert _violation(normalize_password(typed)) is not None


def test_one_password_however_a_keyboard_composes_it() -> None:
    composed, decomposed = "Zoë's crème brûlée", "Zoe\u0308's cre\u0300me bru\u0302le\u0301e"
    assert composed != decomposed
    assert normalize_password(composed) == normalize_password(decomposed) == composed
    # Compatibility forms too: a full-width letter is its ASCII self.
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in "passphrase")
    assert normalize_password(full_width) == "passphrase"


@pytest.mark.parametrize(
    "password", ["\x00" * 16, "\x1b\x07\x08\x7f" * 4, "tab\tinside the phrase", "line\nbreak here"]
)
def test_control_characters_are_refused(password: str) -> None:
    violation = _violation(password)
    assert violation == FieldViolation("password", "must not contain control characters")


@pytest.mark.parametrize(
    "password",
    ["aaaaaaaaaaaaaaaa", "passwordpassword", "abcabcabcabcabcabc", "Ab1!Ab1!Ab1!Ab1!"],
)
def test_a_character_or_word_repeated_is_refused(password: str) -> None:
    violation = _violation(password)
    assert violation is not None and "repeated" in violation.description


@pytest.mark.parametrize(
    "password", ["123456789012345", "abcdefghijklmnop", "ZYXWVUTSRQPONMLK", "890123456789012"]
)
def test_a_run_is_refused(password: str) -> None:
    violation = _violation(password)
    assert violation is not None and "run" in violation.description


@pytest.mark.parametrize(
    "password",
    [
        "ann.lee@example.org",
        "Ann.Lee@EXAMPLE.org",
        "ann.lee@example.org!",
        "ann.lee!!!2026...",
        "registration service 2026",
        "  Registration-Service!!  ",
    ],
)
def test_the_address_its_name_or_the_services_name_dressed_up_is_refused(password: str) -> None:
    violation = password_violation(
        password,
        context=["Registration Service", "ann.lee@example.org", "ann.lee"],
        min_length=MIN,
        max_length=MAX,
    )
    assert violation is not None
    assert "email address" in violation.description


def test_a_phrase_that_merely_contains_a_context_word_is_accepted() -> None:
    context = ["Registration Service", "ann.lee@example.org", "ann.lee"]
    for password in ("ann.lee keeps bees in the garden", "my registration service is blue"):
        assert password_violation(password, context=context, min_length=MIN, max_length=MAX) is None


def test_no_composition_rules_apply() -> None:
    """NIST SP 800-63B: no digits, capitals or symbols are demanded."""
    assert _violation("correct horse battery staple") is None
    assert _violation("quietlylanternmeadow") is None


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
