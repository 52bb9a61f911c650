"""The type names of the failures that cross Temporal, in one place: activities and workflows
raise them (`ApplicationError(type=...)`), workflows and services read them.

The values are recorded in workflow histories: they never change.
"""

from __future__ import annotations

# The verify_email and resend_verification updates refuse with these; the server maps each
# to a status code.
REGISTRATION_EXPIRED = "Expired"
REGISTRATION_NOT_FOUND = "NotFound"
ALREADY_VERIFIED = "AlreadyVerified"
RESEND_COOLDOWN = "ResendCooldown"
RESEND_LIMIT = "ResendLimit"

# The reset_password update refuses with these.
RESET_NOT_FOUND = "ResetNotFound"
RESET_USED = "ResetUsed"
RESET_EXPIRED = "ResetExpired"

# Activities: the address's unique claim is held by another registration (not retried).
EMAIL_ALREADY_REGISTERED = "EmailAlreadyRegistered"
# A row that must exist does not: no retry can mend it, and it must be seen.
INVARIANT_VIOLATED = "InvariantViolated"

# Email sends. RFC 5321 §4.2.1: a 5yz reply is permanent, a 4yz reply, a timeout or a broken
# connection transient.
PERMANENT_SMTP_FAILURE = "PermanentSmtpFailure"
TRANSIENT_SMTP_FAILURE = "TransientSmtpFailure"
# Not SMTP failures, but the other reasons a send gives up on an attempt: the template is
# missing or broken (the workflow tries again later), or the link in the email was replaced.
TEMPLATE_PROBLEM = "TemplateProblem"
LINK_REPLACED = "LinkReplaced"
