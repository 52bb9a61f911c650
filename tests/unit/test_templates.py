"""EMAIL_TEMPLATES_DIR: an operator's own copy of the email templates, which the worker reads
again when a file changes, and whose mistakes come out as a TemplateProblem naming the file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from registration.adapters.email.messages import OutgoingEmail
from registration.adapters.email.rendering import (
    BUNDLED_TEMPLATES,
    TemplateProblem,
    TemplateRenderer,
)
from registration.domain.email_kinds import EmailKind
from registration.settings import Settings
from tests.email_samples import RECIPIENT, render_sample

APP = "Acme Accounts"
SENDER = "Mia from Support"


@pytest.fixture
def templates_dir(tmp_path: Path) -> Path:
    target = tmp_path / "templates"
    shutil.copytree(BUNDLED_TEMPLATES, target)
    return target


@pytest.fixture
def renderer(templates_dir: Path, monkeypatch: pytest.MonkeyPatch) -> TemplateRenderer:
    """Built from the settings as the worker builds it, with EMAIL_TEMPLATES_DIR set."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("EMAIL_TEMPLATES_DIR", str(templates_dir))
    monkeypatch.setenv("APP_NAME", APP)
    monkeypatch.setenv("SMTP_FROM_NAME", SENDER)
    settings = Settings(_env_file=None)
    assert settings.email_templates_dir == templates_dir
    return TemplateRenderer(
        app_name=settings.app_name,
        sender_name=settings.smtp_from_name,
        templates_dir=settings.email_templates_dir,
    )


def render(renderer: TemplateRenderer, kind: EmailKind = EmailKind.WELCOME) -> OutgoingEmail:
    return render_sample(renderer, kind)


def edit(path: Path, text: str) -> None:
    """Writes `text` to `path`, with a modification time clearly later than the file had, so
    that the change is seen whatever the file system's timestamp resolution."""
    before = path.stat().st_mtime_ns if path.exists() else None
    path.write_text(text)
    if before is not None:
        later = max(path.stat().st_mtime_ns, before + 2_000_000_000)
        os.utime(path, ns=(later, later))


def problem(renderer: TemplateRenderer, kind: EmailKind = EmailKind.WELCOME) -> TemplateProblem:
    with pytest.raises(TemplateProblem) as raised:
        render(renderer, kind)
    return raised.value


# The folder is used -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(EmailKind))
def test_an_unchanged_copy_renders_like_the_bundled_templates(
    renderer: TemplateRenderer, kind: EmailKind
) -> None:
    bundled = TemplateRenderer(app_name=APP, sender_name=SENDER)
    assert render(renderer, kind) == render(bundled, kind)


def test_a_changed_subject_is_used(renderer: TemplateRenderer, templates_dir: Path) -> None:
    edit(templates_dir / "welcome.subject.txt", "Hello from {{ app_name }}, edited\n")
    assert render(renderer).subject == f"Hello from {APP}, edited"
    # The bundled templates are not touched.
    assert render(TemplateRenderer(app_name=APP)).subject == f"Welcome to {APP}"


def test_an_edit_while_running_is_picked_up_by_the_same_renderer(
    renderer: TemplateRenderer, templates_dir: Path
) -> None:
    assert render(renderer).subject == f"Welcome to {APP}"
    edit(templates_dir / "welcome.subject.txt", "Now open at {{ app_name }}\n")
    edit(templates_dir / "welcome.txt", "Edited text for {{ recipient }}\n")
    rendered = render(renderer)
    assert rendered.subject == f"Now open at {APP}"
    assert rendered.text == f"Edited text for {RECIPIENT}\n"


# Missing files --------------------------------------------------------------------------------


def test_a_deleted_template_is_named_and_putting_it_back_heals(
    renderer: TemplateRenderer, templates_dir: Path
) -> None:
    before = render(renderer)
    (templates_dir / "welcome.html").unlink()

    missing = problem(renderer)
    assert missing.template == "welcome.html"
    assert str(missing) == "email template 'welcome.html': not found"

    # Put back by the operator (a new file, a new modification time): the same renderer
    # renders again, without a restart.
    shutil.copy(BUNDLED_TEMPLATES / "welcome.html", templates_dir / "welcome.html")
    assert render(renderer) == before


@pytest.mark.parametrize("kind", list(EmailKind))
def test_a_deleted_layout_is_named_not_the_template_extending_it(
    renderer: TemplateRenderer, templates_dir: Path, kind: EmailKind
) -> None:
    before = render(renderer, kind)  # the HTML template is cached by now
    (templates_dir / "_layout.html").unlink()

    missing = problem(renderer, kind)
    assert missing.template == "_layout.html"
    assert str(missing) == "email template '_layout.html': not found"

    shutil.copy(BUNDLED_TEMPLATES / "_layout.html", templates_dir / "_layout.html")
    assert render(renderer, kind) == before


def test_a_missing_included_template_is_named(
    renderer: TemplateRenderer, templates_dir: Path
) -> None:
    edit(templates_dir / "welcome.txt", "Hello\n{% include 'footer.txt' %}\n")
    missing = problem(renderer)
    assert missing.template == "footer.txt"
    assert str(missing) == "email template 'footer.txt': not found"


def test_a_templates_dir_that_does_not_exist_names_the_first_template(tmp_path: Path) -> None:
    renderer = TemplateRenderer(app_name=APP, templates_dir=tmp_path / "no-such-folder")
    missing = problem(renderer, EmailKind.VERIFICATION)
    assert missing.template == "verification.subject.txt"
    assert "not found" in str(missing)


# Broken files ---------------------------------------------------------------------------------


def test_a_syntax_error_names_the_file_and_the_line(
    renderer: TemplateRenderer, templates_dir: Path
) -> None:
    render(renderer)
    edit(templates_dir / "welcome.txt", "Hello,\n\nwelcome to {{ app_name }.\n")
    broken = problem(renderer)
    assert broken.template == "welcome.txt"
    assert str(broken).startswith("email template 'welcome.txt': syntax error on line 3: ")


def test_a_syntax_error_in_the_layout_names_the_layout_and_the_line(
    renderer: TemplateRenderer, templates_dir: Path
) -> None:
    layout = templates_dir / "_layout.html"
    lines = layout.read_text().splitlines(keepends=True)
    lines.insert(4, "  <p>{{ app_name }</p>\n")  # becomes line 5
    edit(layout, "".join(lines))
    broken = problem(renderer)
    assert broken.template == "_layout.html"
    assert str(broken).startswith("email template '_layout.html': syntax error on line 5: ")


@pytest.mark.parametrize("name", ["welcome.subject.txt", "welcome.txt", "welcome.html"])
def test_an_undefined_variable_names_the_file_and_the_variable(
    renderer: TemplateRenderer, templates_dir: Path, name: str
) -> None:
    path = templates_dir / name
    edit(path, path.read_text().replace("{{ app_name }}", "{{ app_nmae }}", 1))
    broken = problem(renderer)
    assert broken.template == name
    assert str(broken) == f"email template '{name}': UndefinedError: 'app_nmae' is undefined"


def test_an_undefined_variable_in_the_layout_names_the_layout(
    renderer: TemplateRenderer, templates_dir: Path
) -> None:
    layout = templates_dir / "_layout.html"
    edit(layout, layout.read_text().replace("{{ sender_name }}", "{{ sender_nmae }}"))
    broken = problem(renderer)
    assert "'sender_nmae' is undefined" in str(broken)
    assert broken.template == "_layout.html"


def test_any_other_render_error_names_the_file(
    renderer: TemplateRenderer, templates_dir: Path
) -> None:
    edit(templates_dir / "welcome.txt", "{{ app_name | int('x', 'y', 'z') }}\n")
    broken = problem(renderer)
    assert broken.template == "welcome.txt"
    assert str(broken).startswith("email template 'welcome.txt': TypeError: ")


# Subjects -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "subject",
    ["", "\n", "   \n\n", "{% if false %}never{% endif %}\n", "{{ '' }}\n"],
    ids=["empty", "newline", "blank", "empty-if", "empty-expression"],
)
def test_an_empty_subject_is_a_problem(
    renderer: TemplateRenderer, templates_dir: Path, subject: str
) -> None:
    edit(templates_dir / "welcome.subject.txt", subject)
    broken = problem(renderer)
    assert broken.template == "welcome.subject.txt"
    assert str(broken) == "email template 'welcome.subject.txt': must render to exactly one line"


@pytest.mark.parametrize(
    "subject",
    ["Welcome\nto {{ app_name }}\n", "Welcome\r\nto {{ app_name }}\r\n", "Welcome\rto it"],
    ids=["lf", "crlf", "cr"],
)
def test_a_subject_of_several_lines_is_a_problem(
    renderer: TemplateRenderer, templates_dir: Path, subject: str
) -> None:
    edit(templates_dir / "welcome.subject.txt", subject)
    broken = problem(renderer)
    assert broken.template == "welcome.subject.txt"
    assert "must render to exactly one line" in str(broken)


def test_a_subject_file_saved_with_crlf_is_one_line(
    renderer: TemplateRenderer, templates_dir: Path
) -> None:
    edit(templates_dir / "welcome.subject.txt", "Welcome to {{ app_name }}\r\n")
    assert render(renderer).subject == f"Welcome to {APP}"


def test_a_subject_with_a_unicode_line_separator_is_a_problem(
    renderer: TemplateRenderer, templates_dir: Path
) -> None:
    edit(templates_dir / "welcome.subject.txt", "Welcome\u2028to {{ app_name }}\n")
    broken = problem(renderer)
    assert broken.template == "welcome.subject.txt"
