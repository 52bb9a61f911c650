"""The codec endpoint decrypts for the web UI's origin only, and round-trips payloads."""

from __future__ import annotations

import httpx
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from registration.adapters.temporal.payload_codec import ENCODING, EncryptionCodec
from tests.integration.harness import Stack

UI_ORIGIN = "http://127.0.0.1:8233"


def as_json(payloads: list[Payload]) -> str:
    return json_format.MessageToJson(Payloads(payloads=payloads))


async def test_decode_and_encode_round_trip(stack: Stack) -> None:
    codec = EncryptionCodec(stack.settings.resolved_payload_keys())
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'"ann@example.com"')
    [sealed] = await codec.encode([plain])
    base = f"http://{stack.devstack.env['CODEC_SERVER_ADDRESS']}"

    async with httpx.AsyncClient(base_url=base) as http:
        decoded = await http.post(
            "/decode",
            content=as_json([sealed]),
            headers={"Content-Type": "application/json", "Origin": UI_ORIGIN},
        )
        assert decoded.status_code == 200
        assert decoded.headers["access-control-allow-origin"] == UI_ORIGIN
        [payload] = json_format.Parse(decoded.text, Payloads()).payloads
        assert payload == plain

        encoded = await http.post("/encode", content=as_json([plain]))
        [resealed] = json_format.Parse(encoded.text, Payloads()).payloads
        assert resealed.metadata["encoding"] == ENCODING
        assert b"ann@example.com" not in resealed.data
        assert await codec.decode([resealed]) == [plain]

        garbage = await http.post("/decode", content="{not json")
        assert garbage.status_code == 400


async def test_cors_admits_only_the_configured_ui_origin(stack: Stack) -> None:
    base = f"http://{stack.devstack.env['CODEC_SERVER_ADDRESS']}"
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type,x-namespace"}  # fmt: skip
    async with httpx.AsyncClient(base_url=base) as http:
        allowed = await http.options("/decode", headers={"Origin": UI_ORIGIN, **preflight})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == UI_ORIGIN
        assert "x-namespace" in allowed.headers["access-control-allow-headers"].lower()

        foreign = await http.options(
            "/decode", headers={"Origin": "https://evil.example", **preflight}
        )
        assert foreign.status_code == 400
        assert "access-control-allow-origin" not in foreign.headers
