"""Encryption of every Temporal payload: what the web UI, the CLI and the history store see of
a registration is ciphertext, and nothing that reaches our processes through Temporal is
believed unless it is a payload we encrypted for that workflow.

AES-256-GCM with a 12-byte random nonce per payload. The key id travels in the payload's
metadata, so keys can be rotated: every configured key decrypts, the first one encrypts. So do
the namespace and ID of the workflow the payload belongs to (from the SDK's serialization
context), and all three are bound to the ciphertext as associated data: a payload lifted from
one workflow's history into another is refused, as is any payload not encrypted by us.

A refused payload is not an error of the whole workflow task: it is replaced by a payload of
the encoding `binary/refused`, which no converter decodes. The SDK then drops a signal that
carries it, rejects an update, fails a query, and fails the task of a workflow started with it
— each where a malformed argument would end.
"""

from __future__ import annotations

import base64
import binascii
import copy
import dataclasses
import logging
import os
import types
import typing
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    ActivitySerializationContext,
    CompositePayloadConverter,
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    DefaultPayloadConverter,
    EncodingPayloadConverter,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
    WorkflowSerializationContext,
)

log = logging.getLogger(__name__)

ENCODING = b"binary/encrypted"
REFUSED_ENCODING = b"binary/refused"
KEY_ID_METADATA = "encryption-key-id"
NAMESPACE_METADATA = "encryption-namespace"
WORKFLOW_ID_METADATA = "encryption-workflow-id"
# Inside the ciphertext: the dataclass a payload was made from (see PayloadConverter).
CONTRACT_TYPE_METADATA = "contract-type"
# Set on a decrypted payload that was bound to no workflow (an upgrade's legacy payload).
LEGACY_METADATA = "encryption-legacy"
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


class PayloadRefused(ValueError):
    """A payload our keys did not make for the workflow it was handed to."""


class EncryptionCodec(PayloadCodec, WithSerializationContext):
    """Encrypts for, and decrypts only what was encrypted for, the workflow of the SDK's
    serialization context. Without a context (the codec endpoint, which shows payloads to an
    operator) it decrypts a payload of any workflow, and encrypts for none.

    `legacy_key_ids`: keys whose payloads from before payloads were bound to a workflow are
    still accepted, while the workflows that wrote them finish (PAYLOAD_LEGACY_KEY_IDS).
    """

    def __init__(self, keys: PayloadKeys, *, legacy_key_ids: Collection[str] = ()) -> None:
        if keys.active_id in legacy_key_ids:
            # What is encrypted for no workflow now (the codec endpoint's /encode) would be
            # accepted by every workflow.
            raise ValueError(
                f"PAYLOAD_LEGACY_KEY_IDS names the active payload key {keys.active_id!r}: "
                "put a new key first in PAYLOAD_KEYS, then list the old one"
            )
        self._active_id = keys.active_id
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.keys.items()}
        self._legacy_key_ids = frozenset(legacy_key_ids)
        self._workflow: tuple[str, str] | None = None

    def with_context(self, context: SerializationContext) -> EncryptionCodec:
        # Called for every workflow activation: a shallow copy shares the ciphers.
        bound = copy.copy(self)
        workflow_id = (
            context.workflow_id
            if isinstance(context, WorkflowSerializationContext | ActivitySerializationContext)
            else None
        )
        namespace: str | None = getattr(context, "namespace", None)
        bound._workflow = (namespace, workflow_id) if namespace and workflow_id else None
        return bound

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._decrypt_or_refuse(p) for p in payloads]

    def decode_for_display(self, payloads: Sequence[Payload]) -> list[Payload]:
        """What an operator may see: our payloads decrypted, whatever their workflow; any
        other payload as it is (a forged one is shown for what it is, and believed by none)."""
        return [self._decrypt(p) if _is_encrypted(p) else p for p in payloads]

    def _encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        key_id = self._active_id.encode()
        metadata = {"encoding": ENCODING, KEY_ID_METADATA: key_id}
        if self._workflow is not None:
            namespace, workflow_id = self._workflow
            metadata[NAMESPACE_METADATA] = namespace.encode()
            metadata[WORKFLOW_ID_METADATA] = workflow_id.encode()
        sealed = self._ciphers[self._active_id].encrypt(
            nonce, payload.SerializeToString(), _associated_data(metadata)
        )
        return Payload(metadata=metadata, data=nonce + sealed)

    def _decrypt_or_refuse(self, payload: Payload) -> Payload:
        try:
            self._check_belongs_here(payload)
            plain = self._decrypt(payload)
        except Exception as err:
            # Raised, it would fail the whole workflow task, and a signal stays in the
            # history: one malformed signal would stop its workflow for good.
            refused = (
                err
                if isinstance(err, PayloadRefused)
                else PayloadRefused(f"it is malformed ({type(err).__name__})")
            )
            log.warning("payload refused: %s", refused)
            return Payload(metadata={"encoding": REFUSED_ENCODING}, data=str(refused).encode())
        if self._workflow is not None and WORKFLOW_ID_METADATA not in payload.metadata:
            # From before payloads were bound (accepted above only for a legacy key): the
            # converter then takes it without a contract type.
            plain.metadata[LEGACY_METADATA] = b"1"
        return plain

    def _check_belongs_here(self, payload: Payload) -> None:
        if not _is_encrypted(payload):
            raise PayloadRefused("it is not encrypted with our keys")
        if self._workflow is None:
            return
        namespace = payload.metadata.get(NAMESPACE_METADATA)
        workflow_id = payload.metadata.get(WORKFLOW_ID_METADATA)
        if workflow_id is None:
            key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode()
            if key_id not in self._legacy_key_ids:
                raise PayloadRefused(f"it is bound to no workflow (key {key_id!r})")
            return
        found = (namespace.decode() if namespace else "", workflow_id.decode())
        if found != self._workflow:
            raise PayloadRefused(
                f"it belongs to another workflow ({found[1]!r} of {found[0]!r}), "
                f"not to {self._workflow[1]!r}"
            )

    def _decrypt(self, payload: Payload) -> Payload:
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode()
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadRefused(f"it is encrypted with an unknown key id {key_id!r}")
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, _associated_data(payload.metadata))
        except InvalidTag as err:
            raise PayloadRefused(f"it does not decrypt with key {key_id!r}") from err
        return Payload.FromString(plain)


def _is_encrypted(payload: Payload) -> bool:
    return payload.metadata.get("encoding") == ENCODING


def _associated_data(metadata: Any) -> bytes:
    """The key id, and the namespace and workflow ID where the payload is bound to one (a
    payload from before binding had the key id alone)."""
    key_id: bytes = metadata.get(KEY_ID_METADATA, b"")
    workflow_id: bytes | None = metadata.get(WORKFLOW_ID_METADATA)
    if workflow_id is None:
        return key_id
    namespace: bytes = metadata.get(NAMESPACE_METADATA, b"")
    return b"\0".join((b"workflow-bound", key_id, namespace, workflow_id))


class RefusedPayloadConverter(EncodingPayloadConverter):
    """Decodes no refused payload: says why it was refused instead."""

    @property
    def encoding(self) -> str:
        return REFUSED_ENCODING.decode()

    def to_payload(self, value: Any) -> Payload | None:
        return None

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        raise PayloadRefused(f"payload refused: {payload.data.decode(errors='replace')}")


class PayloadConverter(CompositePayloadConverter):
    """The SDK's default converters, and the refused payloads' own (last: it encodes nothing).

    Each payload made from a dataclass names it (inside the ciphertext), and a payload decodes
    into a dataclass only if it names that one: a workflow's own start input, sent back as an
    update's argument, is refused, though both are of that workflow and the update's fields
    are a subset of the input's.
    """

    def __init__(self) -> None:
        super().__init__(
            *DefaultPayloadConverter.default_encoding_payload_converters,
            RefusedPayloadConverter(),
        )

    def to_payloads(self, values: Sequence[Any]) -> list[Payload]:
        payloads = super().to_payloads(values)
        for value, payload in zip(values, payloads, strict=True):
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                payload.metadata[CONTRACT_TYPE_METADATA] = type(value).__qualname__.encode()
        return payloads

    def from_payloads(
        self, payloads: Sequence[Payload], type_hints: list[type] | None = None
    ) -> list[Any]:
        for payload, hint in zip(payloads, type_hints or [], strict=False):
            _check_contract_type(payload, hint)
        return super().from_payloads(payloads, type_hints)


def _check_contract_type(payload: Payload, hint: Any) -> None:
    expected = _contract_types(hint)
    if not expected or payload.metadata.get("encoding") in (b"binary/null", REFUSED_ENCODING):
        return
    named = payload.metadata.get(CONTRACT_TYPE_METADATA)
    if named is None:
        if payload.metadata.get(LEGACY_METADATA) == b"1":
            return
        raise PayloadRefused(f"payload refused: it names no type where {expected} is expected")
    if named.decode(errors="replace") not in expected:
        raise PayloadRefused(
            f"payload refused: a {named.decode(errors='replace')} where {expected} is expected"
        )


def _contract_types(hint: Any) -> set[str]:
    """The dataclasses a type hint admits (`X`, `X | None`)."""
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return {hint.__qualname__}
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return set().union(*(_contract_types(arg) for arg in typing.get_args(hint)))
    return set()


def encrypted_data_converter(
    keys: PayloadKeys, *, legacy_key_ids: Collection[str] = ()
) -> DataConverter:
    """The default converter with encrypted payloads, failure messages and stack traces, each
    bound to its workflow."""
    return dataclasses.replace(
        DataConverter.default,
        payload_converter_class=PayloadConverter,
        payload_codec=EncryptionCodec(keys, legacy_key_ids=legacy_key_ids),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
