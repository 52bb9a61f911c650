"""The application layer as the gRPC layer sees it: one service per concern, built together
from one Settings, one Temporal client and one database engine."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine
from temporalio.client import Client

from registration.notification_repository import NotificationRepository
from registration.notification_service import NotificationService
from registration.password_reset_service import PasswordResetService
from registration.passwords import build_password_hasher
from registration.repository import RegistrationRepository
from registration.reset_repository import PasswordResetRepository
from registration.service import RegistrationService
from registration.settings import Settings
from registration.sign_in_service import SignInService
from registration.throttle_repository import SignInThrottleRepository


@dataclass(frozen=True)
class Services:
    registration: RegistrationService
    sign_in: SignInService
    password_reset: PasswordResetService
    notifications: NotificationService


def build_services(settings: Settings, client: Client, engine: Engine) -> Services:
    repository = RegistrationRepository(engine)
    hasher = build_password_hasher(settings)
    secret_key = settings.resolved_secret_key()
    return Services(
        registration=RegistrationService(
            settings=settings,
            client=client,
            repository=repository,
            hasher=hasher,
            secret_key=secret_key,
        ),
        sign_in=SignInService(
            settings=settings,
            repository=repository,
            throttle=SignInThrottleRepository(engine),
            hasher=hasher,
            secret_key=secret_key,
        ),
        password_reset=PasswordResetService(
            settings=settings,
            client=client,
            resets=PasswordResetRepository(engine),
            hasher=hasher,
            secret_key=secret_key,
        ),
        notifications=NotificationService(
            settings=settings, client=client, notifications=NotificationRepository(engine)
        ),
    )
