"""What a new password must be (RegisterUser, ResetPassword): normalized (NFKC), then the
domain's rules with this service's context words, then in no list of leaked passwords."""

from __future__ import annotations

from registration.adapters.leaked_passwords import is_leaked
from registration.domain.errors import FieldViolation
from registration.domain.validation import for_field, normalize_password, password_violation
from registration.settings import Settings

LEAKED = "is too common: it appears in lists of leaked passwords"


def new_password(
    password: str, *, email: str | None, settings: Settings, field: str = "password"
) -> tuple[str, FieldViolation | None]:
    """The password as it is hashed and checked (normalized), and why it is refused, if it
    is; the violation names `field`, the request's own."""
    normalized = normalize_password(password)
    context = [settings.app_name, *([email, email.partition("@")[0]] if email else [])]
    problem = password_violation(
        normalized,
        context=context,
        min_length=settings.password_min_length,
        max_length=settings.password_max_length,
    )
    if problem is None and is_leaked(normalized):
        problem = FieldViolation("password", LEAKED)
    return normalized, for_field(problem, field)
