"""Search attributes the workflows keep up to date, so that an operator can list, in the web
UI or with `temporal workflow list --query`, say, the pending registrations whose email failed:

    RegistrationStatus = "PENDING_VERIFICATION" AND EmailDeliveryStatus = "FAILED"

They carry states only, never personal data.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

REGISTRATION_STATUS = SearchAttributeKey.for_keyword("RegistrationStatus")
# The newest email with a link (a registration's verification email, a reset's link email)
# or the notification's email: PENDING, SENT or FAILED.
EMAIL_DELIVERY_STATUS = SearchAttributeKey.for_keyword("EmailDeliveryStatus")

ALL = (REGISTRATION_STATUS, EMAIL_DELIVERY_STATUS)


def registration_started() -> TypedSearchAttributes:
    """What a registration starts with: set by the start request itself, so the workflow need
    not upsert them (one command and one visibility write fewer per registration)."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(REGISTRATION_STATUS, "PENDING_VERIFICATION"),
            SearchAttributePair(EMAIL_DELIVERY_STATUS, "PENDING"),
        ]
    )
