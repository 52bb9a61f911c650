"""The codec endpoint that lets the Temporal web UI show decrypted payloads to an operator.

    python -m registration.entrypoints.codec_endpoint      (listens on CODEC_SERVER_ADDRESS)

POST /decode and POST /encode take and return `{"payloads": [...]}` in protobuf JSON, as the
UI and `temporal --codec-endpoint` send them. Browsers may call it only from the origins in
CODEC_CORS_ORIGINS.

Whoever may call /decode reads every payload, so an operator proves who they are with a bearer
token: CODEC_ACCESS_TOKEN, or a JWT that the identity provider of CODEC_JWKS_URL signed (the
access token the Temporal UI forwards). Without either it listens on a loopback address only,
and never in production (docs/security.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence

import jwt
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
from registration.settings import Settings, is_loopback, load_settings, split_address

log = logging.getLogger(__name__)

CodecStep = Callable[[Sequence[Payload]], Awaitable[list[Payload]]]
# Asymmetric algorithms only: a JWT must be signed by the identity provider's private key.
JWT_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"]


class OperatorAuth:
    """Whether a request's bearer token proves an operator: the configured token, or a JWT
    signed by a key of the identity provider's JWKS for our audience and issuer, unexpired."""

    def __init__(
        self,
        *,
        token: str | None = None,
        jwks_url: str | None = None,
        issuer: str | None = None,
        audience: str | None = None,
    ) -> None:
        self._token_digest = hashlib.sha256(token.encode()).digest() if token else None
        # Keys are fetched on first use and kept; a JWT naming a key id not seen yet
        # fetches the set again (the provider rotated its keys).
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True) if jwks_url else None
        self._issuer, self._audience = issuer, audience

    @classmethod
    def from_settings(cls, settings: Settings) -> OperatorAuth | None:
        """None when nothing is configured: the endpoint is then open, on loopback only."""
        token = settings.codec_access_token
        if token is None and settings.codec_jwks_url is None:
            return None
        return cls(
            token=token.get_secret_value() if token else None,
            jwks_url=settings.codec_jwks_url,
            issuer=settings.codec_jwt_issuer,
            audience=settings.codec_jwt_audience,
        )

    async def allows(self, authorization: str | None) -> bool:
        scheme, _, credential = (authorization or "").partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            return False
        if self._token_digest is not None and hmac.compare_digest(
            hashlib.sha256(credential.encode()).digest(), self._token_digest
        ):
            return True
        if self._jwks is None:
            return False
        try:
            # Fetching the key set is blocking I/O: off the event loop.
            key = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, credential)
            jwt.decode(
                credential,
                key.key,
                algorithms=JWT_ALGORITHMS,
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "iss", "aud"]},
            )
        except (jwt.InvalidTokenError, jwt.PyJWKClientError) as err:
            log.warning("codec request refused: %s", err)
            return False
        return True


def create_codec_app(
    codec: EncryptionCodec,
    *,
    allowed_origins: Sequence[str],
    auth: OperatorAuth | None = None,
) -> Starlette:
    async def decode_for_display(payloads: Sequence[Payload]) -> list[Payload]:
        return codec.decode_for_display(payloads)

    def endpoint(step: CodecStep) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            if auth is not None and not await auth.allows(request.headers.get("authorization")):
                return JSONResponse(
                    {"error": "an operator's bearer token is needed"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
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
    auth = OperatorAuth.from_settings(settings)
    host, port = split_address(settings.codec_server_address)
    if auth is None:
        if settings.environment == "production":
            raise SystemExit(
                "codec endpoint: production needs CODEC_ACCESS_TOKEN or CODEC_JWKS_URL: "
                "whoever may call it reads every payload"
            )
        if not is_loopback(host):
            raise SystemExit(
                f"codec endpoint: without CODEC_ACCESS_TOKEN or CODEC_JWKS_URL it listens on "
                f"a loopback address only, not {host} (CODEC_SERVER_ADDRESS)"
            )
    app = create_codec_app(
        EncryptionCodec(settings.resolved_payload_keys()),
        allowed_origins=settings.codec_cors_origins,
        auth=auth,
    )
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
