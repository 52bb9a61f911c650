"""A load run that accounts for every registration (`make load`, or in CI at a smaller size).

    python -m bench.load [--registrations 1000] [--concurrency 32] [--sends-per-second 200]
                         [--keep]

Starts the real stack in a temporary folder (Temporal dev server, worker, gRPC server, SMTP
sink, SQLite), registers N addresses through gRPC, verifies half of them with the token read
from the mailbox, lets the other half expire, and then checks every one: ACTIVE or EXPIRED in
the database, the same end in its workflow's result in Temporal, and exactly the expected
emails (verified: the verification and the welcome email; expired: the verification email
only). Prints the counts and every discrepancy; exits 1 on any.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import TypeVar

import grpc
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from registration.adapters.db.engine import build_engine
from registration.adapters.db.tables import User
from registration.adapters.temporal.connect import connect_temporal
from registration.devtools.launcher import UNLIMITED_CALLS, DevStack, isolated_env, stack_settings
from registration.devtools.smtp_sink import link_token
from registration.domain.identifiers import workflow_id_for_registration
from registration.domain.statuses import RegistrationStatus
from registration.entrypoints.grpc.client import open_channel
from registration.settings import Settings
from registration.v1 import registration_pb2 as pb
from registration.v1 import registration_pb2_grpc as pb_grpc

PASSWORD = "correct horse battery staple"
T = TypeVar("T")


@dataclass
class Outcome:
    registrations: int
    seconds: dict[str, float] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    discrepancies: list[str] = field(default_factory=list)

    def report(self) -> str:
        lines = [f"registrations: {self.registrations}"]
        lines += [f"  {name}: {count}" for name, count in sorted(self.counts.items())]
        lines += [f"  {phase}: {secs:.1f} s" for phase, secs in self.seconds.items()]
        register = self.seconds.get("register")
        if register:
            lines.append(f"  RegisterUser rate: {self.registrations / register:.1f}/s")
        lines.append(f"discrepancies: {len(self.discrepancies)}")
        lines += [f"  {d}" for d in self.discrepancies[:50]]
        return "\n".join(lines)


async def bounded(concurrency: int, jobs: list[Callable[[], Awaitable[T]]]) -> list[T]:
    gate = asyncio.Semaphore(concurrency)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    return await asyncio.gather(*(one(job) for job in jobs))


async def call_until_answered(call: Callable[[], Awaitable[T]], within: float = 120) -> T:
    """Repeats a call while it answers UNAVAILABLE, as clients are told to."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await call()
        except grpc.aio.AioRpcError as err:
            if err.code() is not grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.2)


def mailbox(mail_dir: Path) -> dict[str, list[EmailMessage]]:
    by_recipient: dict[str, list[EmailMessage]] = {}
    for path in sorted(mail_dir.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        by_recipient.setdefault(str(message["To"]), []).append(message)
    return by_recipient


async def wait_for(done: Callable[[], bool], within: float, what: str) -> bool:
    deadline = time.monotonic() + within
    while not done():
        if time.monotonic() > deadline:
            print(f"gave up waiting: {what}", file=sys.stderr)
            return False
        await asyncio.sleep(0.5)
    return True


async def run(
    registrations: int, concurrency: int, var_dir: Path, sends_per_second: float
) -> Outcome:
    # Long enough to register everyone and verify half before the first expiry.
    timeout = 60 + registrations * 0.12
    env = {
        **isolated_env(var_dir),
        "WORKER_METRICS_ADDRESS": "",
        "SERVER_METRICS_ADDRESS": "",
        "VERIFICATION_TIMEOUT": f"{timeout:.0f}s",
        "VERIFICATION_REMINDER": "false",
        "EMAIL_SENDS_PER_SECOND": str(sends_per_second),
        **UNLIMITED_CALLS,
        "LOG_LEVEL": "WARNING",
    }
    stack = DevStack(var_dir=var_dir, env=env, ui_port=None, log_dir=var_dir / "logs")
    outcome = Outcome(registrations)
    stack.start_all()
    try:
        await _drive(outcome, stack, env["GRPC_ADDRESS"], concurrency, timeout)
    finally:
        stack.stop_all()
    return outcome


async def _drive(
    outcome: Outcome, stack: DevStack, grpc_address: str, concurrency: int, expiry: float
) -> None:
    run_id = uuid.uuid4().hex[:6]
    names = [f"load-{run_id}-{i}@example.com" for i in range(outcome.registrations)]
    to_verify = set(names[: len(names) // 2])
    mail_dir = Path(stack.env["MAIL_DIR"])
    ids: dict[str, str] = {}

    async with open_channel(stack_settings(stack.env), grpc_address) as channel:
        stub = pb_grpc.RegistrationServiceStub(channel)

        def register(address: str) -> Callable[[], Awaitable[None]]:
            async def job() -> None:
                reply = await call_until_answered(
                    lambda: stub.RegisterUser(
                        pb.RegisterUserRequest(email=address, password=PASSWORD), timeout=60
                    )
                )
                ids[address] = reply.registration_id

            return job

        started = time.monotonic()
        await bounded(concurrency, [register(a) for a in names])
        outcome.seconds["register"] = time.monotonic() - started

        await wait_for(
            lambda: len(mailbox(mail_dir)) >= len(names), expiry, "every verification email"
        )
        outcome.seconds["until every verification email"] = time.monotonic() - started

        tokens = {a: link_token(m[0]) for a, m in mailbox(mail_dir).items()}

        def verify(address: str) -> Callable[[], Awaitable[None]]:
            async def job() -> None:
                token = tokens.get(address)
                if token is None:
                    outcome.discrepancies.append(f"{address}: no verification email to verify")
                    return
                await call_until_answered(
                    lambda: stub.VerifyEmail(pb.VerifyEmailRequest(token=token), timeout=60)
                )

            return job

        await bounded(concurrency, [verify(a) for a in sorted(to_verify)])
        outcome.seconds["until half verified"] = time.monotonic() - started

    engine = build_engine(stack.env["DATABASE_URL"])

    def decided() -> bool:
        with Session(engine) as session:
            pending = session.exec(
                select(User).where(User.status == RegistrationStatus.PENDING_VERIFICATION)
            ).first()
        return pending is None

    await wait_for(decided, expiry + 120, "every registration decided")
    # The welcome emails follow activation; give the last ones a moment.
    await wait_for(
        lambda: sum(len(m) for m in mailbox(mail_dir).values()) >= len(names) + len(to_verify),
        60,
        "every welcome email",
    )
    outcome.seconds["until every registration decided"] = time.monotonic() - started
    await _account(outcome, stack, engine, names, to_verify, ids)
    engine.dispose()


async def _account(
    outcome: Outcome,
    stack: DevStack,
    engine: Engine,
    names: list[str],
    to_verify: set[str],
    ids: dict[str, str],
) -> None:
    expected = {
        a: RegistrationStatus.ACTIVE if a in to_verify else RegistrationStatus.EXPIRED
        for a in names
    }
    with Session(engine) as session:
        users = session.exec(select(User)).all()
    rows: dict[str, list[User]] = {}
    for user in users:
        rows.setdefault(user.email, []).append(user)
    for address in names:
        found = rows.get(address, [])
        if len(found) != 1:
            outcome.discrepancies.append(f"{address}: {len(found)} rows in the database")
            continue
        outcome.counts[f"database {found[0].status.value}"] += 1
        if found[0].status is not expected[address]:
            outcome.discrepancies.append(
                f"{address}: {found[0].status.value} in the database, expected "
                f"{expected[address].value}"
            )

    client = await connect_temporal(
        Settings(
            temporal_address=stack.env["TEMPORAL_ADDRESS"],
            payload_keys_file=Path(stack.env["PAYLOAD_KEYS_FILE"]),
        )
    )

    def result_of(address: str) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            handle = client.get_workflow_handle(workflow_id_for_registration(ids[address]))
            result = await handle.result()
            outcome.counts[f"workflow {result['status']}"] += 1
            if result["status"] != expected[address].value:
                outcome.discrepancies.append(
                    f"{address}: workflow ended {result['status']}, expected "
                    f"{expected[address].value}"
                )

        return job

    await bounded(32, [result_of(a) for a in names if a in ids])
    missing = [a for a in names if a not in ids]
    outcome.discrepancies += [f"{a}: RegisterUser never answered" for a in missing]

    box = mailbox(Path(stack.env["MAIL_DIR"]))
    for address in names:
        messages = box.get(address, [])
        want = 2 if address in to_verify else 1
        outcome.counts[f"emails {len(messages)}"] += 1
        if len(messages) != want:
            outcome.discrepancies.append(
                f"{address}: {len(messages)} emails, expected {want} "
                f"({', '.join(str(m['Subject']) for m in messages)})"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--registrations", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--sends-per-second",
        type=float,
        default=200,
        help="EMAIL_SENDS_PER_SECOND of the worker (default: 200)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the stack's folder (logs, databases, mail)"
    )
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="registration-load-"))
    outcome = asyncio.run(run(args.registrations, args.concurrency, folder, args.sends_per_second))
    print(outcome.report())
    if args.keep:
        print(f"stack folder: {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)
    sys.exit(1 if outcome.discrepancies else 0)


if __name__ == "__main__":
    main()
