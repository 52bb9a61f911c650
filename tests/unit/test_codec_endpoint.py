"""The codec endpoint decrypts only for operators who prove who they are: the configured bearer
token, or a JWT of the identity provider for our audience; and without either it never listens
beyond loopback, nor at all in production."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from registration.adapters.temporal.payload_codec import EncryptionCodec, PayloadKeys
from registration.entrypoints.codec_endpoint import OperatorAuth, create_codec_app, serve
from registration.settings import Settings

KEYS = PayloadKeys.parse(PayloadKeys.generate_entry("k1"))
TOKEN = "an-operator-token-of-at-least-32-characters"
ISSUER = "https://id.example"
AUDIENCE = "temporal-codec"
PLAIN = Payload(metadata={"encoding": b"json/plain"}, data=b'"ann@example.com"')


def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


SIGNING, STRANGER = private_key(), private_key()


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    """The identity provider's key set, served as a provider serves it."""
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(SIGNING.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "provider-1", "use": "sig", "alg": "RS256"}]})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    server.shutdown()


def access_token(key: Any = None, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "olga", "iat": now, "exp": now + 300}
    return jwt.encode(
        {**body, **claims}, key or SIGNING, algorithm="RS256", headers={"kid": "provider-1"}
    )


def hs256_with_the_public_key() -> str:
    """A token "signed" with HMAC under the provider's public key, which anyone has: made by
    hand, as PyJWT itself refuses to."""
    pem = SIGNING.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "typ": "JWT", "kid": "provider-1"}
    claims = {"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300}
    signing_input = b".".join(
        base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=")
        for part in (header, claims)
    )
    signature = hmac.new(pem, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()


async def sealed() -> str:
    [payload] = await EncryptionCodec(KEYS).encode([PLAIN])
    return json_format.MessageToJson(Payloads(payloads=[payload]))


@pytest.fixture
async def endpoint(jwks_url: str) -> AsyncIterator[httpx.AsyncClient]:
    auth = OperatorAuth(token=TOKEN, jwks_url=jwks_url, issuer=ISSUER, audience=AUDIENCE)
    app = create_codec_app(EncryptionCodec(KEYS), allowed_origins=[], auth=auth)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://codec"
    ) as http:
        yield http


async def decode(http: httpx.AsyncClient, authorization: str | None) -> httpx.Response:
    headers = {"Authorization": authorization} if authorization else {}
    return await http.post("/decode", content=await sealed(), headers=headers)


async def test_the_configured_token_decrypts(endpoint: httpx.AsyncClient) -> None:
    answer = await decode(endpoint, f"Bearer {TOKEN}")
    assert answer.status_code == 200
    assert json_format.Parse(answer.text, Payloads()).payloads == [PLAIN]


async def test_a_jwt_of_the_identity_provider_decrypts(endpoint: httpx.AsyncClient) -> None:
    assert (await decode(endpoint, f"Bearer {access_token()}")).status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer ",
        "Basic b2xnYTpzZWNyZXQ=",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        "Bearer not-a-jwt",
    ],
    ids=["none", "empty", "basic", "longer", "shorter", "garbage"],
)
async def test_anything_else_is_refused(
    endpoint: httpx.AsyncClient, authorization: str | None
) -> None:
    answer = await decode(endpoint, authorization)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    assert "ann@example.com" not in answer.text
    encode = await endpoint.post("/encode", content=await sealed())
    assert encode.status_code == 401


@pytest.mark.parametrize(
    "token",
    [
        lambda: access_token(exp=int(time.time()) - 60),
        lambda: access_token(aud="another-service"),
        lambda: access_token(iss="https://impostor.example"),
        lambda: access_token(STRANGER),
        # The provider's public key used as an HMAC secret (algorithm confusion).
        lambda: hs256_with_the_public_key(),
    ],
    ids=["expired", "other audience", "other issuer", "other key", "hs256 with the public key"],
)
async def test_a_jwt_that_does_not_hold_is_refused(endpoint: httpx.AsyncClient, token: Any) -> None:
    assert (await decode(endpoint, f"Bearer {token()}")).status_code == 401


async def test_health_needs_no_token(endpoint: httpx.AsyncClient) -> None:
    assert (await endpoint.get("/healthz")).status_code == 200


@pytest.mark.usefixtures("clean_environment")
@pytest.mark.parametrize(
    ("environment", "address"),
    [("production", "127.0.0.1:0"), ("development", "0.0.0.0:0")],
    ids=["production", "beyond loopback"],
)
async def test_without_a_token_it_refuses_to_start(environment: str, address: str) -> None:
    settings = Settings(
        _env_file=None,
        environment=environment,
        codec_server_address=address,
        payload_keys=PayloadKeys.generate_entry("k1"),
    )
    with pytest.raises(SystemExit, match="CODEC_ACCESS_TOKEN or CODEC_JWKS_URL"):
        await serve(settings)
