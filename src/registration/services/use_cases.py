"""The use cases as the entry points receive them: one service per concern."""

from __future__ import annotations

from dataclasses import dataclass

from registration.services.notifications import NotificationService
from registration.services.password_reset import PasswordResetService
from registration.services.registration import RegistrationService
from registration.services.sign_in import SignInService


@dataclass(frozen=True)
class Services:
    registration: RegistrationService
    sign_in: SignInService
    password_reset: PasswordResetService
    notifications: NotificationService
