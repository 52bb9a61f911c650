"""Nothing personal or secret is readable in Temporal: every byte of every history, read by a
client without the codec, is searched for the email, the password, its hash and the token."""

from __future__ import annotations

import uuid

from temporalio.client import Client

from registration.adapters.temporal.payload_codec import EncryptionCodec
from registration.v1 import registration_pb2 as pb
from registration.v1 import registration_pb2_grpc as pb_grpc
from tests.integration.harness import Stack, token_of


async def test_histories_hold_no_email_password_hash_or_token(
    stack: Stack, stub: pb_grpc.RegistrationServiceStub
) -> None:
    password = f"unique password {uuid.uuid4().hex}"
    address = f"secret-{uuid.uuid4().hex[:8]}@example.com"
    registered = await stub.RegisterUser(pb.RegisterUserRequest(email=address, password=password))
    [message] = await stack.wait_for_message(address)
    token = token_of(message)
    await stub.VerifyEmail(pb.VerifyEmailRequest(token=token))
    await stack.wait_for_message(address, count=2)
    [user] = stack.users(address)
    assert user.password_hash is not None and user.verification_token_hash is not None
    # The hash's salt and digest: distinctive, unlike its "$argon2id$v=19$..." prefix.
    hash_secret = user.password_hash.rsplit("$", 2)[-2:]
    needles = {
        "email": address.encode(),
        "email local part": address.split("@")[0].encode(),
        "password": password.encode(),
        "hash salt": hash_secret[0].encode(),
        "hash digest": hash_secret[1].encode(),
        "token": token.encode(),
        "token hash": user.verification_token_hash.encode(),
    }

    decoding = await stack.temporal_client()
    workflow_id = f"registration-{registered.registration_id.split('_')[0]}"
    await decoding.get_workflow_handle(workflow_id).result()

    raw = await Client.connect(stack.devstack.env["TEMPORAL_ADDRESS"])
    histories = [
        await raw.get_workflow_handle(w.id, run_id=w.run_id).fetch_history()
        async for w in raw.list_workflows()
    ]
    assert any(h.workflow_id == workflow_id for h in histories)
    for history in histories:
        data = b"".join(event.SerializeToString() for event in history.events)
        found = [name for name, needle in needles.items() if needle in data]
        assert found == [], f"{history.workflow_id} shows {found}"

    # Nor in any process's log, but the SMTP sink's: it stands in for the mailbox.
    for log in sorted((stack.var_dir / "logs").glob("*.log")):
        if log.name != "smtp-sink.log":
            text = log.read_bytes()
            found = [name for name, needle in needles.items() if needle in text]
            assert found == [], f"{log.name} shows {found}"
    sink_log = (stack.var_dir / "logs" / "smtp-sink.log").read_bytes()
    assert needles["token"] in sink_log  # the mailbox, where the link belongs

    # Decrypted, the same input shows the address and the hash: the scan can fail.
    [ours] = [h for h in histories if h.workflow_id == workflow_id]
    started = ours.events[0].workflow_execution_started_event_attributes
    [plain] = await EncryptionCodec(stack.settings.resolved_payload_keys()).decode(
        list(started.input.payloads)
    )
    assert needles["email"] in plain.data and needles["hash digest"] in plain.data
