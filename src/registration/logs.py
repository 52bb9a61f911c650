"""One logging setup for the processes of the service."""

from __future__ import annotations

import logging


def configure_logging(process: str, level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format=f"%(asctime)s {process} %(levelname)s %(name)s: %(message)s",
    )
