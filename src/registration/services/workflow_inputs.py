"""The settings a workflow fixes into its input when it starts, so that a later change of
configuration never alters a running workflow's schedule or rules."""

from __future__ import annotations

from registration.settings import Settings
from workflows.contracts import EmailRetrySettings, ResendPolicy


def email_retry_settings(settings: Settings) -> EmailRetrySettings:
    return EmailRetrySettings(
        initial_interval_seconds=settings.email_retry_initial_interval.total_seconds(),
        backoff_coefficient=settings.email_retry_backoff_coefficient,
        maximum_interval_seconds=settings.email_retry_maximum_interval.total_seconds(),
        budget_seconds=settings.email_retry_budget.total_seconds(),
        # SMTP_TIMEOUT bounds each step; a conversation has about six of them.
        attempt_timeout_seconds=6 * settings.smtp_timeout.total_seconds(),
    )


def resend_policy(settings: Settings) -> ResendPolicy:
    return ResendPolicy(
        cooldown_seconds=settings.resend_cooldown.total_seconds(), limit=settings.resend_limit
    )
