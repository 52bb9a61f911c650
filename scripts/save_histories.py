"""Saves histories of real runs of every workflow under tests/histories/, for the replay test
(tests/workflows/test_replay.py) that fails when a code change would break a workflow already
in flight.

    .venv/bin/python scripts/save_histories.py [--suffix .after-some-change]

It runs the real stack (Temporal dev server, worker, gRPC servers, SMTP sink, SQLite) in a
temporary folder with short timings and drives each scenario through gRPC: a registration
verified, one expired (after its reminder), one resent, one whose email failed and was resent,
a password reset used (and its "password changed" account email), one expired, one for an
address without an account, an enrollment notification, and a registration-attempt notice;
the verified registration and the used reset also get a signal without proof, as anyone with
access to Temporal could send (ignored).
Payloads are encrypted with the test-only key in tests/histories/payload.keys. Run it again
when a workflow gains a new path, with a --suffix so the new files sit beside the old ones:
keep the old histories (they are what running workflows look like); it never overwrites one.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from pathlib import Path

from temporalio.client import Client

from registration.adapters.temporal.connect import connect_temporal
from registration.devtools.launcher import (
    UNLIMITED_CALLS,
    DevStack,
    free_port,
    isolated_env,
    stack_settings,
)
from registration.devtools.smtp_sink import link_token
from registration.domain.identifiers import (
    email_key,
    password_reset_workflow_id,
    workflow_id_for_notification,
    workflow_id_for_registration,
)
from registration.entrypoints.grpc.client import open_channel
from registration.settings import Settings
from registration.v1 import registration_pb2 as pb
from registration.v1 import registration_pb2_grpc as pb_grpc
from workflows.password_reset import REQUESTED_SIGNAL
from workflows.registration_attempt import NOTICE_WORKFLOW_ID_PREFIX

ROOT = Path(__file__).resolve().parent.parent
HISTORIES = ROOT / "tests" / "histories"
PASSWORD = "correct horse battery staple"


def messages_to(mail_dir: Path, recipient: str) -> list[EmailMessage]:
    found = []
    for path in sorted(mail_dir.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        if message["To"] == recipient:
            found.append(message)
    return found


async def until(done: Callable[[], Awaitable[bool]], what: str, within: float = 90) -> None:
    deadline = time.monotonic() + within
    while not await done():
        if time.monotonic() > deadline:
            raise SystemExit(f"never: {what}")
        await asyncio.sleep(0.2)


def token(message: EmailMessage) -> str:
    found = link_token(message)
    assert found is not None, "the email carries no link with a token"
    return found


async def main(suffix: str) -> None:
    var_dir = Path(tempfile.mkdtemp(prefix="histories-"))
    keys = (HISTORIES / "payload.keys").read_text()
    (var_dir / "payload.keys").write_text(keys)
    hidden_address = f"127.0.0.1:{free_port()}"
    env = {
        **isolated_env(var_dir),
        "WORKER_METRICS_ADDRESS": "",
        "SERVER_METRICS_ADDRESS": "",
        "VERIFICATION_TIMEOUT": "20s",
        "VERIFICATION_REMINDER_AT": "0.4",
        "RESEND_COOLDOWN": "1s",
        "PASSWORD_RESET_TIMEOUT": "10s",
        "REGISTRATION_ATTEMPT_COOLDOWN": "2s",
        "EMAIL_RETRY_INITIAL_INTERVAL": "200ms",
        "EMAIL_RETRY_MAXIMUM_INTERVAL": "1s",
        "EMAIL_RETRY_BUDGET": "4s",
        "SMTP_TIMEOUT": "2s",
        "EMAIL_SENDS_PER_SECOND": "1000",
        **UNLIMITED_CALLS,
    }
    stack = DevStack(var_dir=var_dir, env=env, ui_port=None, log_dir=var_dir / "logs")
    stack.start_all()
    stack.start_server(
        "server-hidden", {"GRPC_ADDRESS": hidden_address, "PREVENT_ENUMERATION": "true"}
    )
    try:
        saved = await _scenarios(stack, env["GRPC_ADDRESS"], hidden_address, suffix)
    finally:
        stack.stop_all()
    print("\n".join(f"saved tests/histories/{name}{suffix}.json" for name in saved))


async def _scenarios(
    stack: DevStack, grpc_address: str, hidden_address: str, suffix: str
) -> list[str]:
    mail = Path(stack.env["MAIL_DIR"])
    run = uuid.uuid4().hex[:6]
    workflow_ids: dict[str, str] = {}
    settings = Settings(
        temporal_address=stack.env["TEMPORAL_ADDRESS"],
        payload_keys_file=Path(stack.env["PAYLOAD_KEYS_FILE"]),
        secret_key_file=Path(stack.env["SECRET_KEY_FILE"]),
    )
    client = await connect_temporal(settings)
    secret = settings.resolved_secret_key()

    async with (
        open_channel(stack_settings(stack.env), grpc_address) as channel,
        open_channel(stack_settings(stack.env), hidden_address) as hidden_channel,
    ):
        stub = pb_grpc.RegistrationServiceStub(channel)
        hidden = pb_grpc.RegistrationServiceStub(hidden_channel)

        async def register(name: str) -> tuple[str, str]:
            address = f"{name}-{run}@example.com"
            reply = await stub.RegisterUser(
                pb.RegisterUserRequest(email=address, password=PASSWORD)
            )
            workflow_ids[name] = workflow_id_for_registration(reply.registration_id)
            return address, reply.registration_id

        async def emails(address: str, count: int) -> list[EmailMessage]:
            async def arrived() -> bool:
                return len(messages_to(mail, address)) >= count

            await until(arrived, f"{count} emails to {address}")
            return messages_to(mail, address)

        async def delivery_failed(registration_id: str) -> bool:
            got = await stub.GetRegistration(
                pb.GetRegistrationRequest(registration_id=registration_id)
            )
            return got.registration.deliveries[0].status == pb.DELIVERY_STATUS_FAILED

        # A client of the Temporal server without the payload keys, as anyone may have one.
        keyless = await Client.connect(settings.temporal_address)

        verified, _ = await register("registration_verified")
        await register("registration_expired")  # left to expire, after its reminder
        resent, resent_id = await register("registration_resent")
        verification = (await emails(verified, 1))[0]
        await keyless.get_workflow_handle(workflow_ids["registration_verified"]).signal("verify")
        await stub.VerifyEmail(pb.VerifyEmailRequest(token=token(verification)))

        await asyncio.sleep(1.2)
        await stub.ResendVerificationEmail(
            pb.ResendVerificationEmailRequest(registration_id=resent_id)
        )
        second = (await emails(resent, 2))[-1]
        await stub.VerifyEmail(pb.VerifyEmailRequest(token=token(second)))

        stack.stop("smtp-sink")
        failed, failed_id = await register("registration_email_failed")
        await until(lambda: delivery_failed(failed_id), "the email FAILED")
        stack.start_smtp_sink()
        await asyncio.sleep(1.2)
        await stub.ResendVerificationEmail(
            pb.ResendVerificationEmailRequest(registration_id=failed_id)
        )
        await stub.VerifyEmail(pb.VerifyEmailRequest(token=token((await emails(failed, 1))[0])))

        # Password resets of the verified account: one used, then one left to expire.
        await stub.RequestPasswordReset(pb.RequestPasswordResetRequest(email=verified))
        reset_mail = (await emails(verified, 3))[-1]
        reset_workflow = password_reset_workflow_id(email_key(secret, verified))
        used_run = (await client.get_workflow_handle(reset_workflow).describe()).run_id
        await keyless.get_workflow_handle(reset_workflow).signal(REQUESTED_SIGNAL)
        await stub.ResetPassword(
            pb.ResetPasswordRequest(token=token(reset_mail), new_password="a new long passphrase")
        )
        await emails(verified, 4)  # "your password was changed"
        await client.get_workflow_handle(reset_workflow, run_id=used_run).result()
        await stub.RequestPasswordReset(pb.RequestPasswordResetRequest(email=verified))
        await emails(verified, 5)
        expired_run = (await client.get_workflow_handle(reset_workflow).describe()).run_id
        nobody = f"nobody-{run}@example.com"
        await stub.RequestPasswordReset(pb.RequestPasswordResetRequest(email=nobody))
        no_account = password_reset_workflow_id(email_key(secret, nobody))

        notified = await stub.NotifyEnrollment(
            pb.NotifyEnrollmentRequest(
                order_id=f"order-{run}",
                organizer_email=f"organizer-{run}@example.com",
                organizer_name="Olga Organizer",
                enrollee_name="Eddie Enrollee",
                offering_name="Pottery for Beginners",
            )
        )
        await hidden.RegisterUser(pb.RegisterUserRequest(email=verified, password=PASSWORD))
        notice = NOTICE_WORKFLOW_ID_PREFIX + email_key(secret, verified)

    runs = {
        **{name: (wid, None) for name, wid in workflow_ids.items()},
        "password_reset_used": (reset_workflow, used_run),
        "password_reset_expired": (reset_workflow, expired_run),
        "password_reset_no_account": (no_account, None),
        "enrollment_notification": (workflow_id_for_notification(notified.notification_id), None),
        "registration_attempt_notice": (notice, None),
    }
    HISTORIES.mkdir(exist_ok=True)
    # Histories already saved are what running workflows look like: never overwritten.
    taken = [n for n in [*runs, "account_email"] if (HISTORIES / f"{n}{suffix}.json").exists()]
    if taken:
        raise SystemExit(
            f"tests/histories/ already has {', '.join(f'{n}{suffix}.json' for n in taken)}: "
            "pass a new --suffix (e.g. .after-some-change)"
        )
    for name, (workflow_id, run_id) in runs.items():
        handle = client.get_workflow_handle(workflow_id, run_id=run_id)
        await handle.result()  # closed: the history is whole
        history = await handle.fetch_history()
        (HISTORIES / f"{name}{suffix}.json").write_text(history.to_json())
    # The "password changed" email of the used reset, sent by a workflow of its own.
    [changed] = [w async for w in client.list_workflows("WorkflowType = 'AccountEmailWorkflow'")]
    account_email = client.get_workflow_handle(changed.id)
    await account_email.result()
    history = await account_email.fetch_history()
    (HISTORIES / f"account_email{suffix}.json").write_text(history.to_json())
    return [*runs, "account_email"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--suffix", default="", help="added to each file's name, e.g. .after-some-change"
    )
    suffix = parser.parse_args().suffix
    asyncio.run(main(suffix))
