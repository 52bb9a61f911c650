"""The kinds of email the service sends; each has its templates and its place in a workflow."""

from __future__ import annotations

from enum import StrEnum


class EmailKind(StrEnum):
    VERIFICATION = "VERIFICATION"
    # Sent once while a registration is still unverified, with the current link.
    REMINDER = "REMINDER"
    WELCOME = "WELCOME"
    REGISTRATION_ATTEMPT = "REGISTRATION_ATTEMPT"
    # A single-use link to choose a new password, and the notice once it was changed.
    PASSWORD_RESET = "PASSWORD_RESET"
    PASSWORD_CHANGED = "PASSWORD_CHANGED"
    # Tells an organizer that an enrollment (an order) succeeded.
    ENROLLMENT = "ENROLLMENT"
