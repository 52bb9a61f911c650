"""Each email kind rendered with the values its send activity gives it, for the tests of the
templates: `expires_at` always, a link for the kinds that carry one, the order's fields and
the ENROLLMENT_SUBJECT setting for the enrollment email."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime

from registration.adapters.email.messages import OutgoingEmail
from registration.adapters.email.rendering import Subject, TemplateRenderer
from registration.domain.email_kinds import EmailKind
from registration.settings import Settings
from workflows.contracts import EnrollmentDetails

LINK = "http://127.0.0.1:8000/verify?token=" + "a" * 52
RESET_LINK = "http://127.0.0.1:8000/reset?token=" + "c" * 52
EXPIRES_AT = datetime(2030, 1, 2, 3, 4, tzinfo=UTC)
RECIPIENT = "ann@example.org"
LINKS = {
    EmailKind.VERIFICATION: LINK,
    EmailKind.REMINDER: LINK,
    EmailKind.PASSWORD_RESET: RESET_LINK,
}
ENROLLMENT = EnrollmentDetails(
    order_id="order-1042",
    organizer_email=RECIPIENT,
    organizer_name="Olga Organizer",
    enrollee_name="Eddie Enrollee",
    enrollee_email="eddie@example.net",
    offering_name="Pottery for Beginners",
    enrolled_at=datetime(2029, 5, 6, 7, 8, tzinfo=UTC),
)
# Kinds whose subject is a setting rather than a `<kind>.subject.txt` file.
SUBJECT_SETTINGS = {
    EmailKind.ENROLLMENT: Subject(
        "ENROLLMENT_SUBJECT", str(Settings.model_fields["enrollment_subject"].default)
    )
}


def render_sample(
    renderer: TemplateRenderer,
    kind: EmailKind,
    *,
    recipient: str = RECIPIENT,
    message_id: str = "<m@example.org>",
) -> OutgoingEmail:
    context: dict[str, object] = {"expires_at": EXPIRES_AT}
    if kind in LINKS:
        context["link"] = LINKS[kind]
    if kind is EmailKind.ENROLLMENT:
        context.update(asdict(ENROLLMENT))
    return renderer.render(
        kind,
        recipient=recipient,
        message_id=message_id,
        subject=SUBJECT_SETTINGS.get(kind),
        **context,
    )
