"""Runs the web pages: `python -m registration.entrypoints.web` (on WEB_ADDRESS, else the host
and port of PUBLIC_BASE_URL; the gRPC server at GRPC_ADDRESS)."""

from __future__ import annotations

import uvicorn

from registration.entrypoints.logs import configure_logging
from registration.entrypoints.web.app import AccessLog, create_app
from registration.settings import load_settings, split_address


def main() -> None:
    settings = load_settings(needs_secrets=False)
    configure_logging("web", settings.log_level, settings.log_format)
    host, port = split_address(settings.web_listen_address())
    uvicorn.run(
        AccessLog(create_app(settings)),
        host=host,
        port=port,
        # Our own access log (AccessLog) writes paths only: uvicorn's would write the query
        # string, which carries the tokens of the email links.
        access_log=False,
        log_config=None,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
