"""Runs the gRPC server: `python server.py` (settings from the environment and `.env`)."""

from __future__ import annotations

import asyncio

from registration import bootstrap
from registration.adapters.db.migrate import SchemaNotCurrent
from registration.adapters.temporal.search_attributes import SearchAttributesMissing
from registration.entrypoints.grpc.server import serve
from registration.entrypoints.logs import configure_logging
from registration.settings import Settings, load_settings


async def run(settings: Settings) -> None:
    services, engine = await bootstrap.connect_services(settings)
    try:
        await serve(settings, services)
    finally:
        engine.dispose()


def main() -> None:
    settings = load_settings()
    configure_logging("server", settings.log_level, settings.log_format)
    try:
        asyncio.run(run(settings))
    except (SchemaNotCurrent, SearchAttributesMissing) as err:
        raise SystemExit(f"server: {err}") from None


if __name__ == "__main__":
    main()
