"""The codec endpoint that lets the Temporal web UI show decrypted payloads to an operator.

    python -m registration.entrypoints.codec_endpoint      (listens on CODEC_SERVER_ADDRESS)

POST /decode and POST /encode take and return `{"payloads": [...]}` in protobuf JSON, as the
UI and `temporal --codec-endpoint` send them. Browsers may call it only from the origins in
CODEC_CORS_ORIGINS. Whoever reaches this endpoint can decrypt every payload: outside a single
developer machine it belongs behind authentication (see the README).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

import uvicorn
from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from temporalio.api.common.v1 import Payload, Payloads

from registration.adapters.temporal.payload_codec import EncryptionCodec
from registration.entrypoints.logs import configure_logging
from registration.settings import Settings, load_settings, split_address

log = logging.getLogger(__name__)

CodecStep = Callable[[Sequence[Payload]], Awaitable[list[Payload]]]


def create_codec_app(codec: EncryptionCodec, *, allowed_origins: Sequence[str]) -> Starlette:
    async def decode_for_display(payloads: Sequence[Payload]) -> list[Payload]:
        return codec.decode_for_display(payloads)

    def endpoint(step: CodecStep) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            try:
                payloads = json_format.Parse(await request.body(), Payloads())
                converted = await step(list(payloads.payloads))
            except (json_format.ParseError, ValueError, UnicodeDecodeError) as err:
                return JSONResponse({"error": str(err)}, status_code=400)
            return Response(
                json_format.MessageToJson(Payloads(payloads=converted)),
                media_type="application/json",
            )

        return handle

    return Starlette(
        routes=[
            Route("/decode", endpoint(decode_for_display), methods=["POST"]),
            Route("/encode", endpoint(codec.encode), methods=["POST"]),
            # For container health checks; says nothing about keys or payloads.
            Route("/healthz", lambda _: PlainTextResponse("ok"), methods=["GET"]),
        ],
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origins=list(allowed_origins),
                allow_methods=["POST"],
                allow_headers=["Content-Type", "X-Namespace", "Authorization"],
                allow_credentials=True,
            )
        ],
    )


async def serve(settings: Settings) -> None:
    app = create_codec_app(
        EncryptionCodec(settings.resolved_payload_keys()),
        allowed_origins=settings.codec_cors_origins,
    )
    host, port = split_address(settings.codec_server_address)
    # uvicorn handles SIGINT/SIGTERM itself: it stops accepting, finishes requests, exits 0.
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    log.info("codec endpoint listening on http://%s:%d", host, port)
    await server.serve()


def main() -> None:
    settings = load_settings()
    configure_logging("codec", settings.log_level, settings.log_format)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
