"""The one clock of the request path and the activities: timezone-aware UTC.

Workflow code never reads it; workflows take time from `workflow.now()`.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
