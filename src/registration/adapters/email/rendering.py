"""Email templates: `<kind>.subject.txt`, `<kind>.txt` and `<kind>.html`, rendered with
Jinja2 into an OutgoingEmail; a missing or broken template is a TemplateProblem that names it."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
    TemplateSyntaxError,
    select_autoescape,
)

from registration.adapters.email.messages import OutgoingEmail
from registration.domain.email_kinds import EmailKind

# The templates the package ships; EMAIL_TEMPLATES_DIR names a folder to use instead.
BUNDLED_TEMPLATES = Path(__file__).with_name("templates")


class TemplateProblem(Exception):
    """A template is missing or cannot be rendered; the message names it and says why."""

    def __init__(self, template: str, reason: str) -> None:
        self.template = template
        super().__init__(f"email template {template!r}: {reason}")


@dataclass(frozen=True)
class Subject:
    """A subject template given as text (`source`) rather than read from the folder; `name`
    says where it came from in error messages (the setting's name)."""

    name: str
    source: str | None


class TemplateRenderer:
    """Renders `<kind>.subject.txt`, `<kind>.txt` and `<kind>.html` from the templates folder:
    the bundled one, or `templates_dir` (EMAIL_TEMPLATES_DIR), which operators may edit while
    the worker runs — a changed file is read again on its next use."""

    def __init__(
        self,
        *,
        app_name: str,
        sender_name: str | None = None,
        templates_dir: Path | None = None,
    ) -> None:
        self._globals = {"app_name": app_name, "sender_name": sender_name or app_name}
        self._env = Environment(
            loader=FileSystemLoader(templates_dir or BUNDLED_TEMPLATES),
            # HTML parts are escaped; subject and text parts are not HTML, so never escaped.
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
            auto_reload=True,
        )
        # Subjects given as settings, compiled once: from_string does not cache.
        self._from_settings: dict[str, Template] = {}

    def render(
        self,
        kind: EmailKind,
        *,
        recipient: str,
        message_id: str,
        subject: Subject | None = None,
        sender: tuple[str, str] | None = None,
        **context: Any,
    ) -> OutgoingEmail:
        """The email of this kind. Its subject comes from `<kind>.subject.txt`, or from
        `subject` when the subject is configured elsewhere (a setting)."""
        name = kind.value.lower()
        values = {**self._globals, "recipient": recipient, **context}
        if subject is None:
            subject = Subject(f"{name}.subject.txt", None)
        title = self._render(subject.name, values, source=subject.source).strip()
        if len(title.splitlines()) != 1:
            raise TemplateProblem(subject.name, "must render to exactly one line")
        return OutgoingEmail(
            recipient=recipient,
            subject=title,
            text=self._render(f"{name}.txt", values),
            html=self._render(f"{name}.html", {"subject": title, **values}),
            message_id=message_id,
            sender=sender,
        )

    def _render(self, template: str, values: dict[str, Any], *, source: str | None = None) -> str:
        try:
            if source is not None:
                if source not in self._from_settings:
                    self._from_settings[source] = self._env.from_string(source)
                return self._from_settings[source].render(values)
            return self._env.get_template(template).render(values)
        except TemplateNotFound as err:
            # The missing one may be a template this one includes or extends.
            raise TemplateProblem(str(err.name or template), "not found") from err
        except TemplateSyntaxError as err:
            raise TemplateProblem(
                err.name or template, f"syntax error on line {err.lineno}: {err.message}"
            ) from err
        except Exception as err:
            # An undefined variable, or a template's own expression failed (a bad filter
            # argument, say): in this template or in one it extends or includes.
            raise TemplateProblem(
                self._failing_template(err) or template, f"{type(err).__name__}: {err}"
            ) from err

    def _failing_template(self, err: Exception) -> str | None:
        """The template whose code raised, from the traceback Jinja rewrites to point at
        template files."""
        names = set(self._env.list_templates())
        for frame in reversed(traceback.extract_tb(err.__traceback__)):
            name = Path(frame.filename).name
            if name in names:
                return name
        return None
