"""Encryption of every Temporal payload: what the web UI, the CLI and the history store see of
a registration is ciphertext.

AES-256-GCM with a 12-byte random nonce per payload. The key id travels in the payload's
metadata (and is bound to the ciphertext as associated data), so keys can be rotated: every
configured key decrypts, the first one encrypts.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
NONCE_BYTES = 12
KEY_BYTES = 32


@dataclass(frozen=True)
class PayloadKeys:
    """Keys by id; `active_id` names the one that encrypts."""

    active_id: str
    keys: dict[str, bytes]

    @classmethod
    def parse(cls, text: str) -> PayloadKeys:
        """`id=base64key` entries separated by commas or new lines; the first one encrypts."""
        entries = [e.strip() for e in text.replace("\n", ",").split(",")]
        keys: dict[str, bytes] = {}
        for entry in (e for e in entries if e and not e.startswith("#")):
            key_id, sep, encoded = entry.partition("=")
            key_id = key_id.strip()
            if not sep or not key_id:
                raise ValueError("payload keys are `id=base64key` entries")
            try:
                key = base64.b64decode(encoded.strip(), validate=True)
            except binascii.Error as err:
                raise ValueError(f"payload key {key_id!r} is not base64") from err
            if len(key) != KEY_BYTES:
                raise ValueError(f"payload key {key_id!r} must be {KEY_BYTES} bytes (AES-256)")
            if key_id in keys:
                raise ValueError(f"payload key id {key_id!r} appears twice")
            keys[key_id] = key
        if not keys:
            raise ValueError("no payload key given")
        return cls(active_id=next(iter(keys)), keys=keys)

    @staticmethod
    def generate_entry(key_id: str) -> str:
        return f"{key_id}={base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: PayloadKeys) -> None:
        self._active_id = keys.active_id
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.keys.items()}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._decrypt(p) for p in payloads]

    def _encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        key_id = self._active_id.encode()
        sealed = self._ciphers[self._active_id].encrypt(nonce, payload.SerializeToString(), key_id)
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id}, data=nonce + sealed
        )

    def _decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # written before encryption was switched on
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode()
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise ValueError(f"payload encrypted with unknown key id {key_id!r}")
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            return Payload.FromString(cipher.decrypt(nonce, sealed, key_id.encode()))
        except InvalidTag as err:
            raise ValueError(f"payload does not decrypt with key {key_id!r}") from err


def encrypted_data_converter(keys: PayloadKeys) -> DataConverter:
    """The default converter with encrypted payloads, failure messages and stack traces."""
    return dataclasses.replace(
        DataConverter.default,
        payload_codec=EncryptionCodec(keys),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
