"""The benchmark: the service measured against bare Temporal in the same run (`make bench`).

    python -m bench [--registrations 1000] [--pending 10000] [--calls 300]
                    [--phases latency,throughput,pending] [--database-url URL]
                    [--output bench/results] [--quick] [--keep]

Starts the real stack (Temporal dev server, worker, gRPC server, SMTP sink, SQLite) and a
bare worker beside it with the same worker settings (send rate, workflow cache size), then
measures:

1. RegisterUser latency p50/p95/p99 at 1, 16 and 64 concurrent clients, beside a bare
   `client.start_workflow` of an empty workflow at the same concurrency, and one argon2id hash.
2. End-to-end throughput: RegisterUser → the verification email in the SMTP sink →
   VerifyEmail → ACTIVE, for N registrations, beside a bare workflow of the same shape (four
   activities, an update) run by the same worker settings; the ratio ours / bare. (Our two
   database steps run as local activities; the bare ones stay ordinary activities.) Two
   rounds, each side first once, each round's ratio beside the run's; the CPU time each
   process spent per registration; where one of our registrations waits (RegisterUser, its
   email, VerifyEmail).
3. Scale of waiting: P registrations pending at once: worker and dev server memory (RSS), and
   GetRegistration latency while they wait.

Reports a table on the terminal, bench/results/bench-<time>.json and a .png chart, and whether
each target holds. Every phase also checks that no registration was lost or duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import grpc
from sqlalchemy import func
from sqlmodel import Session, col, select
from temporalio.client import Client
from tqdm import tqdm

from bench.bare import BareRegistrationWorkflow, EmptyWorkflow
from bench.report import write_chart, write_table
from bench.results import Latency, Results, judge
from registration.adapters.db.engine import build_engine
from registration.adapters.db.tables import User
from registration.adapters.password_hashing import build_password_hasher
from registration.adapters.temporal.connect import connect_temporal
from registration.devtools.launcher import UNLIMITED_CALLS, DevStack, isolated_env, stack_settings
from registration.devtools.smtp_sink import token_from_summary
from registration.domain.statuses import RegistrationStatus
from registration.entrypoints.grpc.client import open_channel
from registration.settings import Settings
from registration.v1 import registration_pb2 as pb
from registration.v1 import registration_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PASSWORD = "correct horse battery staple"
CONCURRENCY = (1, 16, 64)
SENDS_PER_SECOND = 1000.0
# The stages of one registration end to end, as the client sees them.
E2E_STAGES = ("RegisterUser", "until the email", "VerifyEmail")
CACHED_WORKFLOWS = 250  # the worker's default, given to both workers
T = TypeVar("T")


async def timed_calls(
    call: Callable[[int], Awaitable[object]],
    total: int,
    concurrency: int,
    label: str,
    failed: dict[str, int] | None = None,
) -> list[float]:
    """Runs `call(i)` for i in range(total), `concurrency` at a time; the seconds of each call
    that succeeded. With `failed`, a call that fails with a gRPC error is counted there under
    "label: CODE" instead of ending the run."""
    durations: list[float] = []
    gate = asyncio.Semaphore(concurrency)
    bar = tqdm(total=total, desc=label, unit="call", leave=False)

    async def one(i: int) -> None:
        async with gate:
            started = time.perf_counter()
            try:
                await call(i)
            except grpc.aio.AioRpcError as err:
                if failed is None:
                    raise
                key = f"{label}: {err.code().name}"
                failed[key] = failed.get(key, 0) + 1
            else:
                durations.append(time.perf_counter() - started)
            bar.update()

    await asyncio.gather(*(one(i) for i in range(total)))
    bar.close()
    return durations


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (/proc/PID/stat)."""
    # The fields after the command name (which may hold spaces), from the third field on.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds each process of the stack (and the benchmark itself) uses while it runs:
    where a run's time goes, on a machine whose cores they all share."""

    def __init__(self, stack: DevStack) -> None:
        self._pids = {name: p.pid for name, p in stack.processes.items()}
        self._pids["benchmark client"] = os.getpid()
        self._start = self._read()

    def _read(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in self._pids.items()}

    def add_used_to(self, totals: dict[str, float]) -> None:
        for name, now in self._read().items():
            totals[name] = totals.get(name, 0.0) + now - self._start[name]


def ms_per_registration(used: dict[str, float], registrations: int) -> dict[str, float]:
    """Milliseconds of CPU per registration, by process, most first; idle processes left out."""
    return {
        name: round(1000 * seconds / registrations, 1)
        for name, seconds in sorted(used.items(), key=lambda kv: -kv[1])
        if seconds > 0
    }


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


class Mailbox:
    """The verification tokens the SMTP sink has received, by recipient, as they arrive.

    Read from the sink's output (one summary line per message), a few lines at a time: the
    benchmark shares the machine's cores with the stack it measures, so it does not parse
    every message file again."""

    def __init__(self, sink_log: Path) -> None:
        self._log = sink_log
        self._read_to = 0
        self._tokens: dict[str, str] = {}
        self._waiting: dict[str, asyncio.Future[str]] = {}

    async def token_for(self, address: str) -> str:
        if address in self._tokens:
            return self._tokens[address]
        future = self._waiting.setdefault(address, asyncio.get_running_loop().create_future())
        return await future

    async def watch(self) -> None:
        while True:
            for recipient, token in self._new_tokens():
                self._tokens[recipient] = token
                waiting = self._waiting.pop(recipient, None)
                if waiting is not None and not waiting.done():
                    waiting.set_result(token)
            await asyncio.sleep(0.05)

    def _new_tokens(self) -> list[tuple[str, str]]:
        """(recipient, token) of the whole lines written since the last look."""
        with self._log.open("rb") as log:
            log.seek(self._read_to)
            chunk = log.read()
        whole = chunk[: chunk.rfind(b"\n") + 1]
        self._read_to += len(whole)
        found = (token_from_summary(line) for line in whole.decode().splitlines())
        return [hit for hit in found if hit is not None]


def count_messages(mail_dir: Path) -> int:
    return sum(1 for _ in mail_dir.glob("*.eml")) if mail_dir.exists() else 0


class Bench:
    def __init__(self, stack: DevStack, env: dict[str, str], bare_queue: str) -> None:
        self.stack = stack
        self.env = env
        self.bare_queue = bare_queue
        self.send_queue = f"{bare_queue}-send"
        self.engine = build_engine(env["DATABASE_URL"])
        self.mailbox = Mailbox(stack.log_of("smtp-sink"))
        self.run = uuid.uuid4().hex[:6]
        # Emails the runs so far send in all (the SMTP sink's folder counts them).
        self.emails_expected = 0

    async def setup(self) -> None:
        # As every client of ours: the stack's TLS and token settings.
        self.channel = open_channel(stack_settings(self.env))
        self.stub = pb_grpc.RegistrationServiceStub(self.channel)
        self.client: Client = await connect_temporal(
            Settings(
                temporal_address=self.env["TEMPORAL_ADDRESS"],
                payload_keys_file=Path(self.env["PAYLOAD_KEYS_FILE"]),
            )
        )
        self.bare_client = await Client.connect(self.env["TEMPORAL_ADDRESS"])

    def address(self, phase: str, i: int) -> str:
        return f"{phase}-{self.run}-{i}@example.com"

    async def register(self, address: str) -> str:
        reply = await self.stub.RegisterUser(
            pb.RegisterUserRequest(email=address, password=PASSWORD), timeout=120
        )
        return str(reply.registration_id)

    def users_matching(self, prefix: str) -> dict[RegistrationStatus, int]:
        with Session(self.engine) as session:
            rows = session.exec(
                select(User.status, func.count())
                .where(col(User.email).startswith(prefix))
                .group_by(User.status)
            ).all()
        return {RegistrationStatus(status): count for status, count in rows}

    # Phase 1 ----------------------------------------------------------------------------------

    async def latency(self, results: Results, calls: int) -> None:
        hasher = build_password_hasher(Settings(_env_file=None))
        hashes = []
        for _ in tqdm(range(30), desc="argon2id hash", leave=False):
            started = time.perf_counter()
            hasher.hash(PASSWORD)
            hashes.append(time.perf_counter() - started)
        results.argon2 = Latency.of(hashes)

        for concurrency in CONCURRENCY:
            total = calls if concurrency > 1 else max(50, calls // 3)
            phase = f"lat{concurrency}"
            ours = await timed_calls(
                lambda i, phase=phase: self.register(self.address(phase, i)),  # type: ignore[misc]
                total,
                concurrency,
                f"RegisterUser x{concurrency}",
            )
            results.register_user[concurrency] = Latency.of(ours)
            # The worker finishes these registrations and their emails before the bare calls
            # are timed, so neither side runs beside the other's backlog.
            await self.settle(
                f"{phase}-{self.run}-", total, RegistrationStatus.PENDING_VERIFICATION
            )
            self.emails_expected += total
            await self.emails_out()
            self.check(
                results, f"{phase}-{self.run}-", total, RegistrationStatus.PENDING_VERIFICATION
            )
            bare = await timed_calls(
                lambda i: self.bare_client.start_workflow(
                    EmptyWorkflow.run, id=f"empty-{uuid.uuid4().hex}", task_queue=self.bare_queue
                ),
                total,
                concurrency,
                f"bare start_workflow x{concurrency}",
            )
            results.bare_start_workflow[concurrency] = Latency.of(bare)

    async def settle(self, prefix: str, total: int, status: RegistrationStatus) -> None:
        """Waits (a while, longer for more) until the worker has written every registration
        of a phase."""
        deadline = time.monotonic() + max(300, total / 5)
        while time.monotonic() < deadline:
            written = await asyncio.to_thread(self.users_matching, prefix)
            if written.get(status, 0) >= total:
                return
            await asyncio.sleep(0.5)

    def check(self, results: Results, prefix: str, total: int, status: RegistrationStatus) -> None:
        found = self.users_matching(prefix)
        if found != {status: total}:
            results.lost_or_duplicated.append(
                f"{prefix}*: expected {total} {status.value}, found "
                f"{ {s.value: n for s, n in found.items()} }"
            )

    # Phase 2 ----------------------------------------------------------------------------------

    async def end_to_end(self, results: Results, registrations: int) -> None:
        watcher = asyncio.create_task(self.mailbox.watch())
        # Where one registration's time goes: the call, the wait for its email, the click.
        stages: dict[str, list[float]] = {stage: [] for stage in E2E_STAGES}

        async def ours(i: int) -> None:
            address = self.address("e2e", i)
            started = time.perf_counter()
            await self.register(address)
            registered = time.perf_counter()
            token = await self.mailbox.token_for(address)
            mailed = time.perf_counter()
            verified = await self.stub.VerifyEmail(pb.VerifyEmailRequest(token=token), timeout=120)
            assert verified.status == pb.REGISTRATION_STATUS_ACTIVE
            for stage, seconds in zip(
                E2E_STAGES,
                (registered - started, mailed - registered, time.perf_counter() - mailed),
                strict=True,
            ):
                stages[stage].append(seconds)

        async def bare(_: int) -> None:
            handle = await self.bare_client.start_workflow(
                BareRegistrationWorkflow.run,
                args=[self.send_queue, 86400.0],
                id=f"bare-{uuid.uuid4().hex}",
                task_queue=self.bare_queue,
            )
            assert await handle.execute_update(BareRegistrationWorkflow.verify) == "ACTIVE"

        sides = {"ours": (ours, self.emails_out), "bare": (bare, self.bare_finished)}
        seconds = {side: 0.0 for side in sides}
        cpu: dict[str, dict[str, float]] = {side: {} for side in sides}
        each: dict[str, list[float]] = {side: [] for side in sides}
        half = registrations // 2
        # Each round's ratio too: how far two halves of one run differ says how far to trust it.
        round_ratios: list[float] = []
        # Two rounds, ours first and then bare first: neither side always runs second, on the
        # fuller Temporal database. Each side is timed only once the other's work is done.
        for round_number, (order, size) in enumerate(
            ((("ours", "bare"), half), (("bare", "ours"), registrations - half))
        ):
            this_round: dict[str, float] = {}
            for side in order:
                run, finished = sides[side]
                started, meter = time.perf_counter(), CpuMeter(self.stack)
                each[side] += await timed_calls(
                    lambda i, run=run, offset=round_number * half: run(offset + i),  # type: ignore[misc]
                    size,
                    64,
                    f"end to end ({side}, round {round_number + 1} of 2)",
                )
                this_round[side] = time.perf_counter() - started
                seconds[side] += this_round[side]
                if side == "ours":
                    self.emails_expected += 2 * size  # verification and welcome
                await finished()
                meter.add_used_to(cpu[side])
            round_ratios.append(round(this_round["bare"] / this_round["ours"], 3))
        watcher.cancel()
        ours_rate = registrations / seconds["ours"]
        bare_rate = registrations / seconds["bare"]
        results.end_to_end = {
            "registrations": registrations,
            "in_flight": 64,
            "ours_per_second": round(ours_rate, 1),
            "bare_per_second": round(bare_rate, 1),
            "ratio": round(ours_rate / bare_rate, 3),
            "ratio_by_round": round_ratios,
            "ours_each": asdict(Latency.of(each["ours"])),
            "bare_each": asdict(Latency.of(each["bare"])),
            "ours_stages": {stage: asdict(Latency.of(stages[stage])) for stage in E2E_STAGES},
            "ours_cpu_ms_per_registration": ms_per_registration(cpu["ours"], registrations),
            "bare_cpu_ms_per_registration": ms_per_registration(cpu["bare"], registrations),
        }
        self.check(results, f"e2e-{self.run}-", registrations, RegistrationStatus.ACTIVE)

    # Phase 3 ----------------------------------------------------------------------------------

    async def pending(self, results: Results, count: int) -> None:
        prefix = f"pending-{self.run}-"
        ids: list[str] = []

        async def register(i: int) -> None:
            ids.append(await self.register(self.address("pending", i)))

        started = time.perf_counter()
        await timed_calls(
            register, count, 64, f"{count} registrations pending", results.failed_calls
        )
        await self.settle(prefix, len(ids), RegistrationStatus.PENDING_VERIFICATION)
        registered_seconds = time.perf_counter() - started
        self.emails_expected += len(ids)
        await self.emails_out()
        await self.sends_recorded()
        self.check(results, prefix, len(ids), RegistrationStatus.PENDING_VERIFICATION)

        lookups = await timed_calls(
            lambda _: self.stub.GetRegistration(
                pb.GetRegistrationRequest(registration_id=random.choice(ids)), timeout=30
            ),
            500,
            8,
            "GetRegistration while they wait",
            results.failed_calls,
        )
        running = await self.client.count_workflows(
            "WorkflowType = 'RegistrationWorkflow' AND ExecutionStatus = 'Running'"
        )
        results.pending = {
            "registrations": count,
            "seconds_to_register": round(registered_seconds, 1),
            "running_registration_workflows": running.count,
            "worker_rss_mib": rss_mib(self.stack.processes["worker"].pid),
            "dev_server_rss_mib": rss_mib(self.stack.processes["temporal"].pid),
            "get_registration": asdict(Latency.of(lookups)),
        }

    async def bare_finished(self) -> None:
        """Waits (a while) until every bare workflow has run its last activity."""
        deadline = time.monotonic() + 600
        query = "WorkflowType = 'BareRegistrationWorkflow' AND ExecutionStatus = 'Running'"
        while time.monotonic() < deadline:
            if (await self.bare_client.count_workflows(query)).count == 0:
                return
            await asyncio.sleep(0.5)

    async def sends_recorded(self) -> None:
        """Waits (a while) until every running registration has taken in its email's outcome:
        after that the registrations only wait, and the worker is idle."""
        deadline = time.monotonic() + 600
        query = (
            "WorkflowType = 'RegistrationWorkflow' AND ExecutionStatus = 'Running' "
            "AND EmailDeliveryStatus = 'PENDING'"
        )
        while time.monotonic() < deadline:
            if (await self.client.count_workflows(query)).count == 0:
                return
            await asyncio.sleep(1)

    async def emails_out(self) -> None:
        """Waits (a while, longer for more) until every email of the runs so far is out."""
        count = self.emails_expected
        deadline = time.monotonic() + max(900, count / 5)
        mail_dir = Path(self.env["MAIL_DIR"])
        bar = tqdm(total=count, desc="emails out", leave=False)
        seen = 0
        while time.monotonic() < deadline:
            now = await asyncio.to_thread(count_messages, mail_dir)
            bar.update(max(0, min(now, count) - seen))
            seen = max(seen, min(now, count))
            if now >= count:
                break
            await asyncio.sleep(1)
        bar.close()


async def bench(args: argparse.Namespace, folder: Path) -> Results:
    env = {
        **isolated_env(folder),
        **({"DATABASE_URL": args.database_url} if args.database_url else {}),
        "WORKER_METRICS_ADDRESS": "",
        "SERVER_METRICS_ADDRESS": "",
        "EMAIL_SENDS_PER_SECOND": str(SENDS_PER_SECOND),
        **UNLIMITED_CALLS,
        "WORKER_MAX_CACHED_WORKFLOWS": str(CACHED_WORKFLOWS),
        "LOG_LEVEL": "WARNING",
    }
    results = Results(
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        machine=f"{os.cpu_count()} cores",
        settings={
            "EMAIL_SENDS_PER_SECOND": SENDS_PER_SECOND,
            "database": "PostgreSQL" if args.database_url else "SQLite",
            "registrations": args.registrations,
            "pending": args.pending,
            "calls_per_level": args.calls,
        },
    )
    stack = DevStack(var_dir=folder, env=env, ui_port=None, log_dir=folder / "logs")
    bare_queue = f"bare-{uuid.uuid4().hex[:6]}"
    stack.start_all()
    stack._spawn(
        "bare-worker",
        [
            sys.executable, "-m", "bench.bare", env["TEMPORAL_ADDRESS"], bare_queue,
            f"{bare_queue}-send", str(SENDS_PER_SECOND), str(CACHED_WORKFLOWS),
        ],
    )  # fmt: skip
    try:
        run = Bench(stack, env, bare_queue)
        await run.setup()
        phases: dict[str, Callable[[], Awaitable[None]]] = {
            "latency": lambda: run.latency(results, args.calls),
            "throughput": lambda: run.end_to_end(results, args.registrations),
            "pending": lambda: run.pending(results, args.pending),
        }
        for name, phase in phases.items():
            if name not in args.phases:
                continue
            try:
                await phase()
            except (grpc.aio.AioRpcError, AssertionError, TimeoutError) as err:
                # The figures of the other phases still count; this one is reported unfinished.
                results.unfinished_phases[name] = f"{type(err).__name__}: {err}"[:500]
    finally:
        stack.stop_all()
    judge(results)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--registrations", type=int, default=1000, help="end to end (1000)")
    parser.add_argument("--pending", type=int, default=10000, help="waiting at once (10000)")
    parser.add_argument("--calls", type=int, default=300, help="calls per latency level (300)")
    parser.add_argument(
        "--phases",
        default="latency,throughput,pending",
        help="which phases, comma-separated (default: all)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: a check that the benchmark runs"
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="folder of the results")
    parser.add_argument(
        "--keep", action="store_true", help="keep the stack's folder (logs, databases, mail)"
    )
    parser.add_argument(
        "--database-url",
        help="an empty database to use instead of a SQLite file (migrated by the run)",
    )
    args = parser.parse_args(argv)
    args.phases = set(args.phases.split(","))
    if args.quick:
        args.registrations, args.pending, args.calls = 20, 40, 20
    folder = Path(tempfile.mkdtemp(prefix="registration-bench-"))
    try:
        results = asyncio.run(bench(args, folder))
    finally:
        if args.keep:
            print(f"stack folder: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    args.output.mkdir(parents=True, exist_ok=True)
    stem = args.output / f"bench-{results.started_at.replace(':', '')}"
    Path(f"{stem}.json").write_text(json.dumps(asdict(results), indent=2, default=str))
    write_chart(results, Path(f"{stem}.png"))
    print(write_table(results))
    print(f"results: {stem}.json, {stem}.png")
    for phase, error in results.unfinished_phases.items():
        print(f"phase {phase} did not finish: {error}")
    for what, count in results.failed_calls.items():
        print(f"failed calls: {what} x{count}")
    whole = all(
        results.targets[t]["holds"]
        for t in ("no registration lost or duplicated", "every phase finished")
    )
    sys.exit(0 if whole else 1)


if __name__ == "__main__":
    main()
