"""The payload codec believes only payloads encrypted with our keys for the workflow they are
handed to: a forged, lifted, tampered or unknown-key payload is refused."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import ActivitySerializationContext, WorkflowSerializationContext

from registration.adapters.temporal.payload_codec import (
    ENCODING,
    KEY_ID_METADATA,
    LEGACY_METADATA,
    REFUSED_ENCODING,
    WORKFLOW_ID_METADATA,
    EncryptionCodec,
    PayloadKeys,
    PayloadRefused,
    encrypted_data_converter,
)

KEYS = PayloadKeys.parse(PayloadKeys.generate_entry("k1"))
# After a rotation: k2 encrypts, k1 (the same key as KEYS's) still decrypts.
ROTATED = PayloadKeys(active_id="k2", keys={"k2": os.urandom(32), **KEYS.keys})
NAMESPACE = "default"


def plain(text: str = "secret") -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=f'"{text}"'.encode())


def codec_for(workflow_id: str, **kwargs: object) -> EncryptionCodec:
    keys = ROTATED if kwargs.get("legacy_key_ids") else KEYS
    return EncryptionCodec(keys, **kwargs).with_context(  # type: ignore[arg-type]
        WorkflowSerializationContext(namespace=NAMESPACE, workflow_id=workflow_id)
    )


async def one(codec: EncryptionCodec, payload: Payload, *, encode: bool) -> Payload:
    [result] = await (codec.encode([payload]) if encode else codec.decode([payload]))
    return result


def refused_because(payload: Payload) -> str:
    assert payload.metadata["encoding"] == REFUSED_ENCODING, payload
    return payload.data.decode()


async def test_a_payload_decodes_in_the_workflow_it_was_encrypted_for() -> None:
    codec = codec_for("registration-a")
    sealed = await one(codec, plain(), encode=True)
    assert sealed.metadata["encoding"] == ENCODING
    assert b"secret" not in sealed.data
    assert sealed.metadata[WORKFLOW_ID_METADATA] == b"registration-a"
    assert await one(codec_for("registration-a"), sealed, encode=False) == plain()


async def test_an_activity_of_the_workflow_decodes_its_payloads() -> None:
    sealed = await one(codec_for("registration-a"), plain(), encode=True)
    activity = EncryptionCodec(KEYS).with_context(
        ActivitySerializationContext(
            namespace=NAMESPACE,
            activity_id="1",
            activity_type="send_email",
            activity_task_queue="registration-email",
            workflow_id="registration-a",
            workflow_type="RegistrationWorkflow",
            is_local=False,
        )
    )
    assert await one(activity, sealed, encode=False) == plain()


async def test_a_payload_lifted_into_another_workflow_is_refused() -> None:
    sealed = await one(codec_for("password-reset-attacker"), plain(), encode=True)
    reason = refused_because(await one(codec_for("password-reset-victim"), sealed, encode=False))
    assert "belongs to another workflow" in reason
    # The operator's view (no workflow in context) still shows it.
    assert EncryptionCodec(KEYS).decode_for_display([sealed]) == [plain()]


async def test_relabelling_a_lifted_payload_breaks_its_seal() -> None:
    sealed = await one(codec_for("password-reset-attacker"), plain(), encode=True)
    relabelled = Payload()
    relabelled.CopyFrom(sealed)
    relabelled.metadata[WORKFLOW_ID_METADATA] = b"password-reset-victim"
    reason = refused_because(
        await one(codec_for("password-reset-victim"), relabelled, encode=False)
    )
    assert "does not decrypt" in reason
    unbound = Payload()
    unbound.CopyFrom(sealed)
    del unbound.metadata[WORKFLOW_ID_METADATA]
    reason = refused_because(
        await one(codec_for("password-reset-victim", legacy_key_ids=["k1"]), unbound, encode=False)
    )
    assert "does not decrypt" in reason


@pytest.mark.parametrize("in_workflow", [True, False], ids=["in a workflow", "anywhere"])
async def test_a_plaintext_payload_is_refused(in_workflow: bool) -> None:
    codec = codec_for("registration-a") if in_workflow else EncryptionCodec(KEYS)
    assert "not encrypted" in refused_because(await one(codec, plain(), encode=False))


async def test_a_payload_under_an_unknown_key_is_refused() -> None:
    other = EncryptionCodec(PayloadKeys.parse(PayloadKeys.generate_entry("elsewhere")))
    sealed = await one(
        other.with_context(WorkflowSerializationContext(NAMESPACE, "registration-a")),
        plain(),
        encode=True,
    )
    reason = refused_because(await one(codec_for("registration-a"), sealed, encode=False))
    assert "unknown key id 'elsewhere'" in reason


def legacy(payload: Payload, key_id: str = "k1") -> Payload:
    """A payload as written before payloads were bound to a workflow: the key id alone as
    associated data."""
    nonce = os.urandom(12)
    sealed = AESGCM(KEYS.keys[key_id]).encrypt(nonce, payload.SerializeToString(), key_id.encode())
    return Payload(
        metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id.encode()}, data=nonce + sealed
    )


async def test_a_payload_bound_to_no_workflow_is_refused_unless_its_key_is_legacy() -> None:
    old = legacy(plain())
    assert "bound to no workflow" in refused_because(
        await one(codec_for("registration-a"), old, encode=False)
    )
    accepted = codec_for("registration-a", legacy_key_ids=["k1"])
    decoded = await one(accepted, old, encode=False)
    # Labelled, so the converter does not ask a legacy payload for a contract label.
    assert decoded.metadata.pop(LEGACY_METADATA) == b"1"
    assert decoded == plain()


def test_the_active_key_is_never_a_legacy_one() -> None:
    # Payloads encrypted for no workflow now (the codec endpoint's /encode) would pass anywhere.
    with pytest.raises(ValueError, match="names the active payload key 'k1'"):
        EncryptionCodec(KEYS, legacy_key_ids=["k1"])


async def test_the_converter_says_why_a_refused_payload_is_not_decoded() -> None:
    converter = encrypted_data_converter(KEYS).with_context(
        WorkflowSerializationContext(NAMESPACE, "registration-b")
    )
    sealed = (
        await encrypted_data_converter(KEYS)
        .with_context(WorkflowSerializationContext(NAMESPACE, "registration-a"))
        .encode(["secret"])
    )
    with pytest.raises(PayloadRefused, match="belongs to another workflow"):
        await converter.decode(sealed, [str])
    assert await converter.decode(await converter.encode(["mine"]), [str]) == ["mine"]
