"""One logging setup for the processes of the service."""

from __future__ import annotations

import logging
import os


def configure_logging(process: str) -> None:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format=f"%(asctime)s {process} %(levelname)s %(name)s: %(message)s",
    )
