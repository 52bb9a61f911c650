"""LOG_FORMAT: one line per event, as text or JSON, naming the registration it concerns."""

from __future__ import annotations

import json
import logging
import sys

from registration.entrypoints.logs import JsonFormatter, TextFormatter


def record(message: str, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("registration.service", logging.INFO, __file__, 1, message, (), None)
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def test_a_json_line_carries_the_registration_and_the_temporal_context() -> None:
    line = JsonFormatter("worker").format(
        record(
            "sent VERIFICATION email",
            registration_id="abc_0123",
            temporal_activity={
                "workflow_id": "registration-abc",
                "activity_type": "send_email",
                "attempt": 2,
                "namespace": "default",
            },
        )
    )
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "sent VERIFICATION email"
    assert entry["level"] == "INFO" and entry["process"] == "worker"
    assert entry["registration_id"] == "abc_0123"
    assert entry["workflow_id"] == "registration-abc"
    assert entry["activity_type"] == "send_email" and entry["attempt"] == 2
    assert "namespace" not in entry


def test_a_traceback_stays_on_its_line_as_a_field() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "unexpected error", (), sys.exc_info()
        )
    line = JsonFormatter("server").format(failed)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exception"]


def test_a_text_line_ends_with_the_registration_id() -> None:
    line = TextFormatter("server").format(record("registration started", registration_id="r1"))
    assert line.endswith("registration started registration_id=r1")
    assert "registration_id" not in TextFormatter("server").format(record("no registration"))
