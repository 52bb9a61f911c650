"""A local SMTP sink for development and tests: keeps each message as a `.eml` file.

    python -m registration.devtools.smtp_sink [--host 127.0.0.1] [--port 1025] [--mail-dir var/mail]

Prints one line per message: recipient, subject and the first link of its text part.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import os
import re
import signal
import sys
import time
from email.header import decode_header, make_header
from email.message import Message
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.smtp import SMTP, Envelope, Session

_LINK_RE = re.compile(r"https?://\S+")
# What summary_line prints: the recipients, the subject's repr, the first link or "-".
_SUMMARY_RE = re.compile(r"^mail to=(?P<to>\S*) subject=.* link=(?P<link>\S+)$")
# A folded header line: the line break goes, the whitespace after it stays (RFC 5322 2.2.3).
_FOLD_RE = re.compile(r"\r?\n(?=[ \t])")


class MaildirHandler:
    """aiosmtpd handler that writes every accepted message atomically into one folder."""

    def __init__(self, mail_dir: Path) -> None:
        self.mail_dir = mail_dir
        self._count = 0
        mail_dir.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        self._count += 1
        name = f"{time.time_ns()}-{os.getpid()}-{self._count}.eml"
        draft = self.mail_dir / f".{name}.part"
        draft.write_bytes(raw)
        # The rename makes the file appear whole: a reader never sees half a message.
        draft.rename(self.mail_dir / name)
        # compat32, the parser's default, keeps headers as text, far cheaper than
        # policy.default's header objects; the summary needs only the subject and a link.
        message = email.message_from_bytes(raw)
        print(summary_line(message, envelope.rcpt_tos), flush=True)
        return "250 Message accepted for delivery"


def summary_line(message: Message, recipients: list[str]) -> str:
    link = first_link(message) or "-"
    return f"mail to={','.join(recipients)} subject={subject_of(message)!r} link={link}"


def subject_of(message: Message) -> str:
    """The subject as text, from a message parsed with any policy: compat32 leaves it folded
    and RFC 2047 encoded, and a raw UTF-8 header (SMTPUTF8) as surrogates."""
    raw = next((str(v) for k, v in message.raw_items() if k.lower() == "subject"), "")
    raw = _FOLD_RE.sub("", raw).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return str(make_header(decode_header(raw)))


def text_part(message: Message) -> str:
    """The first plain-text part, decoded, from a message parsed with any policy."""
    for part in message.walk():
        if (
            part.get_content_type() == "text/plain"
            and part.get_content_disposition() != "attachment"
        ):
            body = part.get_payload(decode=True)
            if isinstance(body, bytes):
                return body.decode(part.get_content_charset() or "us-ascii", errors="replace")
    return ""


def first_link(message: Message) -> str | None:
    match = _LINK_RE.search(text_part(message))
    return match.group(0) if match else None


def link_token(message: Message) -> str | None:
    """The token of the email's first link, if it has one."""
    return token_of(first_link(message))


def token_of(link: str | None) -> str | None:
    tokens = parse_qs(urlsplit(link).query).get("token", []) if link else []
    return tokens[0] if tokens else None


def token_from_summary(line: str) -> tuple[str, str] | None:
    """(recipients, token) from one of the sink's summary lines, if its link has a token: a
    reader of the sink's output learns each link without opening the message files."""
    match = _SUMMARY_RE.match(line)
    token = token_of(match.group("link")) if match else None
    return (match.group("to"), token) if match and token else None


async def serve(host: str, port: int, mail_dir: Path) -> None:
    loop = asyncio.get_running_loop()
    handler = MaildirHandler(mail_dir)
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="smtp-sink", enable_SMTPUTF8=True), host, port
    )
    print(f"SMTP sink listening on {host}:{port}, keeping mail in {mail_dir}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m registration.devtools.smtp_sink", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--mail-dir", type=Path, default=Path("var/mail"))
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.host, args.port, args.mail_dir))
    except OSError as err:
        sys.exit(f"SMTP sink cannot listen on {args.host}:{args.port}: {err}")


if __name__ == "__main__":
    main()
