"""What `make run` starts: every part comes up and prints where it listens, the CLI works
against it, Ctrl-C stops everything, and a restart on the same folder keeps the registration."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from registration.devtools.launcher import free_port

ROOT = Path(__file__).resolve().parents[2]


def descendants(pid: int) -> set[int]:
    """Every live process below pid, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Launcher:
    def __init__(self, var_dir: Path, env: dict[str, str]) -> None:
        self.output = var_dir / f"launcher-{time.monotonic_ns()}.out"
        with self.output.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "registration.devtools.launcher", "--var-dir", str(var_dir),
                 "--headless"],
                cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_until_running(self) -> None:
        deadline = time.monotonic() + 90
        while "The registration stack is running" not in self.text():
            assert self.process.poll() is None, self.text()
            assert time.monotonic() < deadline, self.text()
            time.sleep(0.2)

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(60)

    def kill_all(self) -> None:
        """After a failed test: the launcher and everything it started."""
        for pid in descendants(self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def cli(
    address: str, *args: str, stdin: str = "", var_dir: Path
) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it beside `make run --var-dir VAR_DIR`: with the local token."""
    token = {"GRPC_LOCAL_TOKEN_FILE": str(var_dir / "local-client.token")}
    return subprocess.run(
        [sys.executable, "-m", "registration", "--address", address, *args],
        input=stdin, capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={**os.environ, **token},
    )  # fmt: skip


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    yield {
        "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "GRPC_ADDRESS": f"127.0.0.1:{free_port()}",
        "SMTP_PORT": str(free_port()),
        "CODEC_SERVER_ADDRESS": f"127.0.0.1:{free_port()}",
        "WORKER_METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
        "SERVER_METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{free_port()}",
    }


def test_launcher_runs_the_stack_and_ctrl_c_leaves_nothing_running(
    tmp_path: Path, env: dict[str, str]
) -> None:
    launcher = Launcher(tmp_path, env)
    try:
        launcher.wait_until_running()
        children = descendants(launcher.process.pid)
        text = launcher.text()
        for part in (env["GRPC_ADDRESS"], env["TEMPORAL_ADDRESS"], f":{env['SMTP_PORT']}"):
            assert part in text
        # Temporal, the SMTP sink, the worker and the server (and the CLI's helpers, if any).
        assert len(children) >= 4

        registered = cli(env["GRPC_ADDRESS"], "register", "cli@example.com",
                         stdin="correct horse battery staple\n", var_dir=tmp_path)  # fmt: skip
        assert registered.returncode == 0, registered.stderr
        registration_id = registered.stdout.split()[1]
        # Within the cooldown a resend is refused, and the CLI says until when.
        too_early = cli(env["GRPC_ADDRESS"], "resend", registration_id, var_dir=tmp_path)
        assert too_early.returncode == 1
        assert "RESOURCE_EXHAUSTED" in too_early.stderr
        assert "RESEND_COOLDOWN: allowed again at 20" in too_early.stderr

        deadline = time.monotonic() + 30
        while "link=http" not in launcher.text():
            assert time.monotonic() < deadline, launcher.text()
            time.sleep(0.2)
        # The sink prints recipient, subject and link; the CLI takes the whole link.
        line = next(x for x in launcher.text().splitlines() if "link=http" in x)
        assert "to=cli@example.com" in line and "Confirm your email" in line
        assert list((tmp_path / "mail").glob("*.eml"))

        verified = cli(env["GRPC_ADDRESS"], "verify", line.split("link=", 1)[1], var_dir=tmp_path)
        assert verified.returncode == 0, verified.stderr
        assert "ACTIVE" in verified.stdout

        rejected = cli(
            env["GRPC_ADDRESS"], "register", "nobody@", stdin="short\n", var_dir=tmp_path
        )
        assert rejected.returncode == 1
        assert "INVALID_ARGUMENT" in rejected.stderr
        assert "  email: " in rejected.stderr and "  password: " in rejected.stderr

        assert launcher.interrupt() == 0, launcher.text()
        assert [pid for pid in children if alive(pid)] == []
    finally:
        launcher.kill_all()

    # A restart on the same folder keeps every registration.
    again = Launcher(tmp_path, env)
    try:
        again.wait_until_running()
        status = cli(env["GRPC_ADDRESS"], "status", registration_id, var_dir=tmp_path)
        assert status.returncode == 0, status.stderr
        assert "status:          ACTIVE" in status.stdout
        assert "email verification: SENT" in status.stdout
        assert again.interrupt() == 0
    finally:
        again.kill_all()


def test_cli_help_and_an_unreachable_server(env: dict[str, str], tmp_path: Path) -> None:
    # Nothing listens on the configured port: the CLI says so plainly.
    help_text = cli(env["GRPC_ADDRESS"], "--help", var_dir=tmp_path)
    assert help_text.returncode == 0
    for command in ("register", "verify", "status", "resend"):
        assert command in help_text.stdout
    unreachable = cli(env["GRPC_ADDRESS"], "status", "x", var_dir=tmp_path)
    assert unreachable.returncode == 1
    assert "UNAVAILABLE" in unreachable.stderr
