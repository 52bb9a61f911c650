"""One logging setup for the processes of the service: one line per event, as text or as
JSON (LOG_FORMAT=json), naming the registration it concerns where there is one.

Our own log calls pass `extra={"registration_id": ...}`; the Temporal SDK's workflow and
activity loggers add their context (workflow ID, activity type, attempt), which the JSON
lines carry as fields too.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s {process} %(levelname)s %(name)s: %(message)s"
# What the Temporal SDK's loggers attach to their records, and the fields kept of it.
_TEMPORAL_CONTEXT = ("temporal_activity", "temporal_workflow")
_TEMPORAL_FIELDS = ("workflow_id", "workflow_type", "activity_type", "attempt", "task_queue")


class TextFormatter(logging.Formatter):
    def __init__(self, process: str) -> None:
        super().__init__(TEXT_FORMAT.format(process=process))

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        registration_id = getattr(record, "registration_id", None)
        return f"{line} registration_id={registration_id}" if registration_id else line


class JsonFormatter(logging.Formatter):
    """One JSON object a line; a traceback is a field, never lines of its own."""

    def __init__(self, process: str) -> None:
        super().__init__()
        self._process = process

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "process": self._process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        registration_id = getattr(record, "registration_id", None)
        if registration_id:
            entry["registration_id"] = registration_id
        for context_name in _TEMPORAL_CONTEXT:
            context = getattr(record, context_name, None)
            if isinstance(context, dict):
                entry.update({k: context[k] for k in _TEMPORAL_FIELDS if k in context})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(process: str, level: str, log_format: str = "text") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(process) if log_format == "json" else TextFormatter(process))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    # Alembic describes every look at the schema at INFO; only its warnings matter here.
    logging.getLogger("alembic").setLevel(logging.WARNING)
