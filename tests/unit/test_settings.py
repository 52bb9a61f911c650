"""Configuration from environment variables: durations, cross-field rules, the secret key."""

from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from registration.settings import Settings, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No variable of the developer's shell and no `.env` of the repository leaks in."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)
    key_file = tmp_path / "keys" / "secret.key"
    monkeypatch.setenv("SECRET_KEY_FILE", str(key_file))
    return key_file


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("90", timedelta(seconds=90)),
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("250ms", timedelta(milliseconds=250)),
        ("1.5h", timedelta(minutes=90)),
        (" 15m ", timedelta(minutes=15)),
        ("PT2H", timedelta(hours=2)),
    ],
)
def test_duration_formats(monkeypatch: pytest.MonkeyPatch, raw: str, expected: timedelta) -> None:
    monkeypatch.setenv("VERIFICATION_TIMEOUT", raw)
    assert Settings(_env_file=None).verification_timeout == expected


@pytest.mark.parametrize("raw", ["soon", "15 minutes", "15w", "-5m"])
def test_unparseable_duration_is_rejected(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("SMTP_TIMEOUT", raw)
    with pytest.raises(ValidationError, match="smtp_timeout"):
        Settings(_env_file=None)


def test_a_zero_keep_alive_is_accepted_and_a_negative_one_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SMTP_KEEP_ALIVE", "0")
    assert Settings(_env_file=None).smtp_keep_alive == timedelta(0)
    monkeypatch.setenv("SMTP_KEEP_ALIVE", "-1s")
    with pytest.raises(ValidationError, match="smtp_keep_alive"):
        Settings(_env_file=None)


def test_env_file_in_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("VERIFICATION_TIMEOUT=2h\n")
    assert Settings().verification_timeout == timedelta(hours=2)


def test_tls_and_starttls_exclude_each_other(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_TLS", "true")
    monkeypatch.setenv("SMTP_STARTTLS", "true")
    with pytest.raises(ValidationError, match="SMTP_TLS and SMTP_STARTTLS"):
        Settings(_env_file=None)


@pytest.mark.parametrize(("tls", "starttls"), [("true", "false"), ("false", "true")])
def test_one_tls_mode_alone_is_accepted(
    monkeypatch: pytest.MonkeyPatch, tls: str, starttls: str
) -> None:
    monkeypatch.setenv("SMTP_TLS", tls)
    monkeypatch.setenv("SMTP_STARTTLS", starttls)
    settings = Settings(_env_file=None)
    assert (settings.smtp_tls, settings.smtp_starttls) == (tls == "true", starttls == "true")


def test_password_min_length_below_8_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PASSWORD_MIN_LENGTH", "7")
    with pytest.raises(ValidationError, match="password_min_length"):
        Settings(_env_file=None)


def test_password_min_length_of_8_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PASSWORD_MIN_LENGTH", "8")
    assert Settings(_env_file=None).password_min_length == 8


def test_password_max_below_min_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PASSWORD_MIN_LENGTH", "100")
    monkeypatch.setenv("PASSWORD_MAX_LENGTH", "99")
    with pytest.raises(ValidationError, match="PASSWORD_MAX_LENGTH"):
        Settings(_env_file=None)


def test_public_base_url_loses_its_trailing_slash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://example.org/")
    assert Settings(_env_file=None).public_base_url == "https://example.org"


# Secret key --------------------------------------------------------------------------------


def test_secret_key_file_is_created_once_with_owner_only_permissions(
    clean_environment: Path,
) -> None:
    key_file = clean_environment
    assert not key_file.exists()

    settings = Settings(_env_file=None)
    first = settings.resolved_secret_key()

    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert first == key_file.read_text().strip().encode()
    assert settings.resolved_secret_key() == first
    assert Settings(_env_file=None).resolved_secret_key() == first
    # The draft written before the link is gone.
    assert sorted(p.name for p in key_file.parent.iterdir()) == ["secret.key"]


def test_existing_key_file_is_not_replaced(clean_environment: Path) -> None:
    kept = "kept-key-" + "k" * 32
    clean_environment.parent.mkdir(parents=True)
    clean_environment.write_text(kept + "\n")
    assert Settings(_env_file=None).resolved_secret_key() == kept.encode()
    assert clean_environment.read_text() == kept + "\n"


def test_short_key_file_is_refused(clean_environment: Path) -> None:
    clean_environment.parent.mkdir(parents=True)
    clean_environment.write_text("hunter2\n")
    with pytest.raises(ValueError, match="at least 32"):
        Settings(_env_file=None).resolved_secret_key()


def test_empty_key_file_is_an_error(clean_environment: Path) -> None:
    clean_environment.parent.mkdir(parents=True)
    clean_environment.write_text("\n")
    with pytest.raises(RuntimeError, match="empty"):
        Settings(_env_file=None).resolved_secret_key()


ENV_KEY = "from-environment-" + "k" * 32


def test_secret_key_variable_wins_over_the_file(
    monkeypatch: pytest.MonkeyPatch, clean_environment: Path
) -> None:
    clean_environment.parent.mkdir(parents=True)
    clean_environment.write_text("from-file")
    monkeypatch.setenv("SECRET_KEY", ENV_KEY)
    assert Settings(_env_file=None).resolved_secret_key() == ENV_KEY.encode()


def test_secret_key_variable_creates_no_file(
    monkeypatch: pytest.MonkeyPatch, clean_environment: Path
) -> None:
    monkeypatch.setenv("SECRET_KEY", ENV_KEY)
    Settings(_env_file=None).resolved_secret_key()
    assert not clean_environment.exists()


def test_secret_key_is_not_shown_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_KEY", ENV_KEY)
    assert ENV_KEY not in repr(Settings(_env_file=None))


def test_short_secret_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_KEY", "hunter2")
    with pytest.raises(ValidationError, match="at least 32"):
        Settings(_env_file=None)


# load_settings -----------------------------------------------------------------------------


def test_load_settings_turns_a_bad_value_into_a_clean_exit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SMTP_PORT", "not-a-port")
    with pytest.raises(SystemExit) as exc_info:
        load_settings()
    message = str(exc_info.value.code)
    assert message.startswith("invalid configuration")
    assert "SMTP_PORT" in message
    # Values are never echoed: a misplaced secret must not end up in a log.
    assert "not-a-port" not in message


def test_load_settings_returns_settings_when_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PORT", "2525")
    assert load_settings().smtp_port == 2525


def test_the_enrollment_sender_defaults_to_the_smtp_sender() -> None:
    settings = Settings(
        _env_file=None, smtp_from_name="Acme", smtp_from_email="no-reply@acme.example"
    )
    assert settings.enrollment_from() == ("Acme", "no-reply@acme.example")
    named = Settings(_env_file=None, enrollment_sender="Shop Bot <shop@acme.example>")
    assert named.enrollment_from() == ("Shop Bot", "shop@acme.example")
    bare = Settings(_env_file=None, smtp_from_name="Acme", enrollment_sender="shop@acme.example")
    assert bare.enrollment_from() == ("Acme", "shop@acme.example")


@pytest.mark.parametrize("sender", ["not an address", "Shop <bötte@acme.example>"])
def test_an_unsendable_enrollment_sender_is_refused_at_start(sender: str) -> None:
    with pytest.raises(ValidationError, match="enrollment_sender"):
        Settings(_env_file=None, enrollment_sender=sender)


def test_a_broken_enrollment_subject_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="not a valid Jinja2 template"):
        Settings(_env_file=None, enrollment_subject="New: {{ offering_name")
