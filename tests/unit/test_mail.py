"""Email templates, message building and delivery to a real SMTP sink."""

from __future__ import annotations

import asyncio
import email
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from registration.adapters.email.messages import OutgoingEmail, message_id_for
from registration.adapters.email.rendering import (
    BUNDLED_TEMPLATES,
    TemplateProblem,
    TemplateRenderer,
)
from registration.adapters.email.smtp import SmtpMailSender
from registration.devtools.smtp_sink import (
    MaildirHandler,
    first_link,
    summary_line,
    token_from_summary,
)
from registration.domain.email_kinds import EmailKind
from registration.settings import Settings
from tests.email_samples import (
    ENROLLMENT,
    EXPIRES_AT,
    LINK,
    LINKS,
    RECIPIENT,
    SUBJECT_SETTINGS,
    render_sample,
)


def _verification(renderer: TemplateRenderer, recipient: str = RECIPIENT) -> OutgoingEmail:
    return renderer.render(
        EmailKind.VERIFICATION,
        recipient=recipient,
        message_id="<reg.verification.1@registration.localhost>",
        link=LINK,
        expires_at=EXPIRES_AT,
    )


# Templates ---------------------------------------------------------------------------------


def test_verification_email_carries_app_name_link_and_deadline() -> None:
    rendered = _verification(TemplateRenderer(app_name="Acme Accounts"))
    assert "Acme Accounts" in rendered.subject
    assert "\n" not in rendered.subject
    assert LINK in rendered.text
    assert f'href="{LINK}"' in rendered.html
    assert "2030-01-02 03:04 UTC" in rendered.text
    assert "2030-01-02 03:04 UTC" in rendered.html
    assert rendered.recipient == RECIPIENT
    assert rendered.message_id == "<reg.verification.1@registration.localhost>"


def test_html_part_escapes_app_name_and_recipient() -> None:
    rendered = _verification(
        TemplateRenderer(app_name="A <b> & Co"), recipient="<script>x</script>@example.com"
    )
    assert "A &lt;b&gt; &amp; Co" in rendered.html
    assert "&lt;script&gt;x&lt;/script&gt;@example.com" in rendered.html
    assert "<b>" not in rendered.html
    assert "<script>" not in rendered.html
    assert "<title>Confirm your email address for A &lt;b&gt; &amp; Co</title>" in rendered.html


def test_text_part_and_subject_are_not_html_escaped() -> None:
    rendered = _verification(TemplateRenderer(app_name="A <b> & Co"))
    assert "A <b> & Co" in rendered.text
    assert "&lt;" not in rendered.text
    assert "&amp;" not in rendered.text
    assert rendered.subject == "Confirm your email address for A <b> & Co"


def test_verification_without_link_is_an_error_not_an_empty_href() -> None:
    with pytest.raises(TemplateProblem, match="'link' is undefined") as problem:
        TemplateRenderer(app_name="Acme").render(
            EmailKind.VERIFICATION, recipient=RECIPIENT, message_id="<m@x>", expires_at=EXPIRES_AT
        )
    # The subject has no link; the plain-text part is the first to need it.
    assert problem.value.template == "verification.txt"
    assert str(problem.value).startswith("email template 'verification.txt': UndefinedError")


def test_welcome_email_renders_without_a_link() -> None:
    rendered = TemplateRenderer(app_name="Acme").render(
        EmailKind.WELCOME, recipient=RECIPIENT, message_id="<reg.welcome.1@x>"
    )
    assert rendered.subject == "Welcome to Acme"
    assert "Acme" in rendered.text
    assert "http" not in rendered.text
    assert "href" not in rendered.html
    assert RECIPIENT in rendered.html


APP = "Acme Accounts"
# Distinct from APP, and neither contains the other: each is looked for on its own.
SENDER = "Mia from Support"
KINDS_WITH_LINK = set(LINKS)


def _render_kind(
    renderer: TemplateRenderer,
    kind: EmailKind,
    *,
    recipient: str = RECIPIENT,
    message_id: str = "<m@example.org>",
) -> OutgoingEmail:
    return render_sample(renderer, kind, recipient=recipient, message_id=message_id)


def test_every_kind_has_its_three_bundled_templates() -> None:
    bundled = BUNDLED_TEMPLATES
    names = {path.name for path in bundled.iterdir() if not path.name.startswith(".")}
    expected = {"_layout.html"} | {
        f"{kind.lower()}{suffix}"
        for kind in EmailKind
        for suffix in (".subject.txt", ".txt", ".html")
        if not (suffix == ".subject.txt" and kind in SUBJECT_SETTINGS)
    }
    assert names >= expected


@pytest.mark.parametrize("kind", list(EmailKind))
def test_every_kind_renders_a_subject_a_text_and_an_html_part(kind: EmailKind) -> None:
    rendered = _render_kind(TemplateRenderer(app_name=APP, sender_name=SENDER), kind)

    assert rendered.subject == rendered.subject.strip()
    assert len(rendered.subject.splitlines()) == 1
    if kind is EmailKind.ENROLLMENT:
        assert rendered.subject == f"New enrollment: {ENROLLMENT.offering_name}"
    else:
        assert APP in rendered.subject
    assert rendered.recipient == RECIPIENT
    assert rendered.message_id == "<m@example.org>"

    assert rendered.text.strip()
    assert "<" not in rendered.text  # plain text, not markup
    assert rendered.html.lstrip().lower().startswith("<!doctype html>")
    assert f"<title>{rendered.subject}</title>" in rendered.html
    for part in (rendered.text, rendered.html):
        assert APP in part
        assert SENDER in part

    if kind in KINDS_WITH_LINK:
        assert LINKS[kind] in rendered.text
        assert f'href="{LINKS[kind]}"' in rendered.html
        assert "2030-01-02 03:04 UTC" in rendered.text
        assert "2030-01-02 03:04 UTC" in rendered.html
    else:
        assert "http" not in rendered.text
        assert "href" not in rendered.html
        assert "2030" not in rendered.text


@pytest.mark.parametrize("kind", sorted(KINDS_WITH_LINK))
def test_kinds_with_a_link_refuse_to_render_without_one(kind: EmailKind) -> None:
    with pytest.raises(TemplateProblem, match="'link' is undefined"):
        TemplateRenderer(app_name=APP).render(
            kind, recipient=RECIPIENT, message_id="<m@x>", expires_at=EXPIRES_AT
        )


@pytest.mark.parametrize("kind", list(EmailKind))
def test_every_html_part_escapes_app_and_sender_name(kind: EmailKind) -> None:
    renderer = TemplateRenderer(app_name="A <b> & Co", sender_name="Mia <support> & Co")
    rendered = _render_kind(renderer, kind)

    assert "A &lt;b&gt; &amp; Co" in rendered.html
    assert "Mia &lt;support&gt; &amp; Co" in rendered.html
    assert "<b>" not in rendered.html
    assert "<support>" not in rendered.html
    # Subject and plain text are not HTML: nothing is escaped there.
    if kind not in SUBJECT_SETTINGS:
        assert "A <b> & Co" in rendered.subject
    assert "A <b> & Co" in rendered.text
    assert "Mia <support> & Co" in rendered.text
    assert "&amp;" not in rendered.text


@pytest.mark.parametrize("kind", list(EmailKind))
def test_sender_name_falls_back_to_the_app_name(kind: EmailKind) -> None:
    default = _render_kind(TemplateRenderer(app_name=APP), kind)
    assert default == _render_kind(TemplateRenderer(app_name=APP, sender_name=APP), kind)


# Message-ID --------------------------------------------------------------------------------


def test_message_id_is_stable_per_delivery() -> None:
    first = message_id_for("reg.verification.1", "no-reply@mail.example.org")
    assert first == message_id_for("reg.verification.1", "no-reply@mail.example.org")
    assert first != message_id_for("reg.welcome.1", "no-reply@mail.example.org")


def test_message_id_uses_the_domain_of_the_from_address() -> None:
    assert message_id_for("d-1", "no-reply@mail.example.org") == "<d-1@mail.example.org>"


def test_message_id_falls_back_to_localhost_without_a_domain() -> None:
    assert message_id_for("d-1", "no-reply@") == "<d-1@localhost>"


# Message building --------------------------------------------------------------------------


def _parts(message: EmailMessage) -> dict[str, str]:
    return {
        part.get_content_type(): part.get_content()
        for part in message.walk()
        if not part.is_multipart()
    }


@pytest.mark.usefixtures("clean_environment")
def test_build_message_has_headers_and_two_alternatives() -> None:
    settings = Settings(
        _env_file=None, smtp_from_email="no-reply@example.org", smtp_from_name="Acme Accounts"
    )
    outgoing = _verification(TemplateRenderer(app_name="Acme"))
    built = SmtpMailSender(settings).build_message(outgoing, date=EXPIRES_AT)
    # Flattened and parsed back (the sink tests below check the bytes that are sent).
    message = email.message_from_bytes(built.as_bytes(), policy=default)

    assert message["From"] == "Acme Accounts <no-reply@example.org>"
    assert message["To"] == RECIPIENT
    assert message["Subject"] == outgoing.subject
    assert message["Message-ID"] == outgoing.message_id
    assert message["Date"].datetime == EXPIRES_AT
    assert message.get_content_type() == "multipart/alternative"
    assert _parts(message) == {"text/plain": outgoing.text, "text/html": outgoing.html}


@pytest.mark.usefixtures("clean_environment")
@pytest.mark.parametrize("kind", list(EmailKind))
def test_built_message_has_the_sender_display_name_and_the_message_id(kind: EmailKind) -> None:
    # A display name that must be quoted in the header (the comma).
    settings = Settings(
        _env_file=None,
        app_name=APP,
        smtp_from_name="Acme, Support Team",
        smtp_from_email="no-reply@mail.example.org",
    )
    renderer = TemplateRenderer(app_name=settings.app_name, sender_name=settings.smtp_from_name)
    message_id = message_id_for(f"reg.{kind.lower()}.1", settings.smtp_from_email)
    outgoing = _render_kind(renderer, kind, message_id=message_id)

    message = SmtpMailSender(settings).build_message(outgoing, date=EXPIRES_AT)
    # Flattened and parsed back (the sink tests below check the bytes that are sent).
    received = email.message_from_bytes(message.as_bytes(), policy=default)

    assert received["From"] == '"Acme, Support Team" <no-reply@mail.example.org>'
    [sender] = received["From"].addresses
    assert sender.display_name == "Acme, Support Team"
    assert sender.addr_spec == "no-reply@mail.example.org"
    assert received["Message-ID"] == f"<reg.{kind.lower()}.1@mail.example.org>"
    assert received["Subject"] == outgoing.subject
    parts = _parts(received)
    assert "Acme, Support Team" in parts["text/plain"]
    assert "Acme, Support Team" in parts["text/html"]


# Delivery to a real SMTP sink --------------------------------------------------------------


class SinkSession(SMTP):
    """One connection to the sink, which says when it has ended."""

    def __init__(self, handler: MaildirHandler) -> None:
        super().__init__(handler, hostname="smtp-sink", enable_SMTPUTF8=True)
        self.ended = asyncio.Event()

    def connection_lost(self, error: Exception | None) -> None:
        self.ended.set()
        super().connection_lost(error)

    async def end(self, seconds: float = 5.0) -> None:
        """Waits until the connection has ended; fails the test after `seconds`."""
        await asyncio.wait_for(self.ended.wait(), seconds)


@dataclass(frozen=True)
class Sink:
    port: int
    mail_dir: Path
    # Every connection a sender has opened, in order.
    connections: list[SinkSession] = field(default_factory=list)

    def messages(self) -> list[EmailMessage]:
        return [
            email.message_from_bytes(path.read_bytes(), policy=default)
            for path in sorted(self.mail_dir.glob("*.eml"))
        ]


class OneEmailPerConnection(MaildirHandler):
    """A relay that takes one email per connection and answers 421 (closing) to the next."""

    def __init__(self, mail_dir: Path) -> None:
        super().__init__(mail_dir)
        self.served: set[Session] = set()

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if session in self.served:
            return "421 4.7.0 one email per connection, closing"
        self.served.add(session)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"


async def _start_sink(
    mail_dir: Path, handler_type: type[MaildirHandler] = MaildirHandler
) -> tuple[asyncio.Server, Sink]:
    handler = handler_type(mail_dir)
    connections: list[SinkSession] = []

    def session() -> SinkSession:
        connections.append(SinkSession(handler))
        return connections[-1]

    # Built like smtp_sink.serve(), which cannot be used here: it waits for a signal.
    server = await asyncio.get_running_loop().create_server(session, "127.0.0.1", 0)
    return server, Sink(server.sockets[0].getsockname()[1], mail_dir, connections)


@pytest.fixture
async def sink(tmp_path: Path) -> AsyncIterator[Sink]:
    server, sink = await _start_sink(tmp_path / "mail")
    yield sink
    server.close()
    await server.wait_closed()


@pytest.mark.usefixtures("clean_environment")
async def test_sender_delivers_one_complete_message(
    sink: Sink, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(_env_file=None, smtp_port=sink.port)
    outgoing = TemplateRenderer(app_name=settings.app_name).render(
        EmailKind.VERIFICATION,
        recipient=RECIPIENT,
        message_id=message_id_for("reg.verification.1", settings.smtp_from_email),
        link=LINK,
        expires_at=EXPIRES_AT,
    )

    await SmtpMailSender(settings).send(outgoing)

    files = list(sink.mail_dir.iterdir())
    assert len(files) == 1
    assert files[0].suffix == ".eml"
    assert not files[0].name.startswith(".")
    [message] = sink.messages()
    assert message["To"] == RECIPIENT
    assert message["Subject"] == outgoing.subject
    assert message["Message-ID"] == "<reg.verification.1@registration.localhost>"
    assert message["From"] == "Durable Registration <no-reply@registration.localhost>"
    parts = _parts(message)
    assert set(parts) == {"text/plain", "text/html"}
    assert LINK in parts["text/plain"]
    assert LINK in parts["text/html"]

    assert first_link(message) == LINK
    expected_summary = f"mail to={RECIPIENT} subject={outgoing.subject!r} link={LINK}"
    assert summary_line(message, [RECIPIENT]) == expected_summary
    assert expected_summary in capsys.readouterr().out
    # What the benchmark reads of the sink's output instead of the message files.
    assert token_from_summary(expected_summary) == (RECIPIENT, "a" * 52)


def test_a_summary_without_a_token_gives_none() -> None:
    assert token_from_summary(f"mail to={RECIPIENT} subject='Welcome' link=-") is None
    assert token_from_summary(f"mail to={RECIPIENT} subject='x' link=http://h/signin") is None
    assert token_from_summary("SMTP sink listening on 127.0.0.1:1025") is None


@pytest.mark.usefixtures("clean_environment")
async def test_non_ascii_subject_survives_the_trip(sink: Sink) -> None:
    settings = Settings(_env_file=None, smtp_port=sink.port, smtp_from_name="Bücherei Ärger")
    outgoing = _verification(TemplateRenderer(app_name="Bücherei Ärger"))

    await SmtpMailSender(settings).send(outgoing)

    [message] = sink.messages()
    assert message["Subject"] == "Confirm your email address for Bücherei Ärger"
    assert message["From"].addresses[0].display_name == "Bücherei Ärger"
    assert "Bücherei Ärger" in _parts(message)["text/plain"]


@pytest.mark.usefixtures("clean_environment")
@pytest.mark.parametrize("recipient", [RECIPIENT, "jörg@example.com"], ids=["ascii", "utf8"])
async def test_every_line_arrives_as_written(
    sink: Sink, recipient: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A line that starts with "From " (mbox files escape it as ">From "), a long line, a
    long non-ASCII subject and a long Message-ID arrive unchanged, whether the message needs
    SMTPUTF8 (a non-ASCII mailbox) or not."""
    settings = Settings(_env_file=None, smtp_port=sink.port)
    text = f"Hello,\n\nFrom now on your account is ready.\n{'x' * 300}\nÄrger? Reply.\n"
    html = f"<p>Hello,</p>\nFrom <b>now</b> on.\n<p>{'y' * 300}</p>\n"
    subject = "Willkommen, Jörg:" + " ein langer Betreff" * 5
    # As long as the IDs of real deliveries: longer than a folded header line.
    message_id = f"<{'p' * 26}_{'2' * 16}.welcome.1@registration.localhost>"
    outgoing = OutgoingEmail(recipient, subject, text, html, message_id)

    await SmtpMailSender(settings).send(outgoing)

    [message] = sink.messages()
    # Lines end in CRLF on the wire.
    received = {kind: part.replace("\r\n", "\n") for kind, part in _parts(message).items()}
    assert received == {"text/plain": text, "text/html": html}
    assert message["Subject"] == subject
    assert message["To"] == recipient
    assert message["Message-ID"] == message_id
    # The sink's own line, from its quicker parse.
    assert f"mail to={recipient} subject={subject!r} link=-" in capsys.readouterr().out


@pytest.mark.usefixtures("clean_environment")
async def test_each_send_is_its_own_file(sink: Sink) -> None:
    settings = Settings(_env_file=None, smtp_port=sink.port)
    await _send_two(SmtpMailSender(settings))

    messages = sink.messages()
    assert len(messages) == 2
    assert {m["Message-ID"] for m in messages} == {
        "<reg.verification.1@registration.localhost>",
        "<w@x>",
    }
    assert first_link(next(m for m in messages if m["Message-ID"] == "<w@x>")) is None
    assert [p.name for p in sink.mail_dir.iterdir() if p.name.endswith(".part")] == []


@pytest.mark.usefixtures("clean_environment")
async def test_the_next_email_goes_through_the_connection_of_the_last(sink: Sink) -> None:
    sender = SmtpMailSender(Settings(_env_file=None, smtp_port=sink.port))
    await _send_two(sender)

    assert len(sink.messages()) == 2
    assert len(sink.connections) == 1
    assert not sink.connections[0].ended.is_set()
    await sender.aclose()
    await sink.connections[0].end()


@pytest.mark.usefixtures("clean_environment")
async def test_an_email_after_the_relay_ended_the_kept_connection_still_goes_out(
    sink: Sink,
) -> None:
    sender = SmtpMailSender(Settings(_env_file=None, smtp_port=sink.port))
    renderer = TemplateRenderer(app_name="Acme")
    await sender.send(_verification(renderer))
    kept = sink.connections[0]
    assert kept.transport is not None
    kept.transport.close()  # as a relay does with connections idle for too long
    await kept.end()

    await sender.send(renderer.render(EmailKind.WELCOME, recipient=RECIPIENT, message_id="<w@x>"))

    assert {m["Message-ID"] for m in sink.messages()} == {
        "<reg.verification.1@registration.localhost>",
        "<w@x>",
    }
    assert len(sink.connections) == 2
    await sender.aclose()


@pytest.mark.usefixtures("clean_environment")
async def test_a_relay_that_closes_a_kept_connection_with_421_still_gets_the_next_email(
    tmp_path: Path,
) -> None:
    server, sink = await _start_sink(tmp_path / "mail", OneEmailPerConnection)
    sender = SmtpMailSender(Settings(_env_file=None, smtp_port=sink.port))
    await _send_two(sender)

    assert len(sink.messages()) == 2
    assert len(sink.connections) == 2
    await sender.aclose()
    server.close()
    await server.wait_closed()


@pytest.mark.usefixtures("clean_environment")
async def test_a_kept_connection_ends_after_the_keep_alive(sink: Sink) -> None:
    settings = Settings(
        _env_file=None, smtp_port=sink.port, smtp_keep_alive=timedelta(milliseconds=200)
    )
    await SmtpMailSender(settings).send(_verification(TemplateRenderer(app_name="Acme")))
    [connection] = sink.connections
    await connection.end()


@pytest.mark.usefixtures("clean_environment")
async def test_without_keep_alive_every_email_has_a_connection_of_its_own(sink: Sink) -> None:
    sender = SmtpMailSender(
        Settings(_env_file=None, smtp_port=sink.port, smtp_keep_alive=timedelta(0))
    )
    await _send_two(sender)

    assert len(sink.messages()) == 2
    assert len(sink.connections) == 2
    for connection in sink.connections:
        await connection.end()


async def _send_two(sender: SmtpMailSender) -> None:
    """A verification email, then a welcome email (Message-ID <w@x>), to RECIPIENT."""
    renderer = TemplateRenderer(app_name="Acme")
    await sender.send(_verification(renderer))
    await sender.send(renderer.render(EmailKind.WELCOME, recipient=RECIPIENT, message_id="<w@x>"))


@pytest.mark.usefixtures("clean_environment")
async def test_unreachable_relay_raises(tmp_path: Path) -> None:
    server, sink = await _start_sink(tmp_path / "mail")
    server.close()
    await server.wait_closed()
    settings = Settings(_env_file=None, smtp_port=sink.port, smtp_timeout=timedelta(seconds=2))
    with pytest.raises(OSError):
        await SmtpMailSender(settings).send(_verification(TemplateRenderer(app_name="Acme")))


@pytest.mark.usefixtures("clean_environment")
async def test_idn_recipient_reaches_a_relay_without_smtputf8(sink: Sink) -> None:
    """normalize_email accepts user@bücher.de; its verification email must be deliverable."""
    settings = Settings(_env_file=None, smtp_port=sink.port)
    await SmtpMailSender(settings).send(
        _verification(TemplateRenderer(app_name="Acme"), recipient="user@bücher.de")
    )
    assert len(sink.messages()) == 1
