"""The whole stack on one machine: what `make run` starts, and what the end-to-end tests use.

    python -m registration.devtools.launcher [--var-dir var] [--ui-port 8233] [--headless]

Applies pending database migrations, then starts, in this order, the local SMTP sink, the
codec endpoint for the web UI, the Temporal dev server (SQLite file under the var folder, so a
restart keeps every registration), the worker, the gRPC server and the web pages behind the
emails' links, each as its own process. Ctrl-C (or SIGTERM, SIGHUP) stops them in
the reverse order; if any of them dies, the others are stopped too.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from registration.adapters.db.engine import build_engine
from registration.adapters.db.migrate import upgrade
from registration.settings import Settings, load_settings, split_address
from workflows.search_attributes import ALL as SEARCH_ATTRIBUTES

# src/registration/devtools/launcher.py → the checkout, where server.py and worker.py are.
PROJECT_ROOT = Path(__file__).resolve().parents[3]
STOP_TIMEOUT_SECONDS = 15.0


def venv_binary(name: str) -> Path:
    """A console script installed beside this interpreter (the venv's bin/), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return beside
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(
            f"{name!r} is not installed; `make run` installs it into .venv from pyproject.toml"
        )
    return Path(found)


def wait_for_port(
    host: str, port: int, *, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"process exited with code {process.returncode} before listening on {port}"
            )
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f}s")


def free_port() -> int:
    """A port that is free now, for tests and side-by-side stacks.

    Taken below the kernel's ephemeral range (32768+ on Linux), where the Temporal dev server
    picks its own random ports and outgoing connections get theirs: a port from that range
    could be taken by one of them before our process binds it.
    """
    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError("no free port found in 20000-32000")


@dataclass
class DevStack:
    """Starts and stops the processes of the stack. `env` holds settings for all of them."""

    var_dir: Path
    env: dict[str, str]
    ui_port: int | None = 8233
    log_dir: Path | None = None  # None: the children write to this terminal
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: list[IO[bytes]] = field(default_factory=list)

    def start_all(self) -> None:
        self.ensure_local_secrets()
        # The schema first: the worker and the server refuse to start on an older one.
        engine = build_engine(self.env["DATABASE_URL"])
        upgrade(engine)
        engine.dispose()
        # The sink and the codec first: the dev server picks random ports of its own.
        self.start_smtp_sink()
        self.start_codec_server()
        self.start_temporal()
        self.start_worker()
        self.start_server()
        self.start_web()

    def ensure_local_secrets(self) -> None:
        """Create the local secret key and payload key under the var folder on first start,
        before several processes would race to do it."""
        settings = Settings(
            secret_key_file=Path(self.env["SECRET_KEY_FILE"]),
            payload_keys_file=Path(self.env["PAYLOAD_KEYS_FILE"]),
        )
        settings.resolved_secret_key()
        settings.resolved_payload_keys()

    def start_codec_server(self) -> subprocess.Popen[bytes]:
        host, port = split_address(self.env["CODEC_SERVER_ADDRESS"])
        process = self._spawn(
            "codec", [sys.executable, "-m", "registration.entrypoints.codec_endpoint"]
        )
        wait_for_port(host, port, timeout=30, process=process)
        return process

    def start_temporal(self) -> subprocess.Popen[bytes]:
        host, port = split_address(self.env["TEMPORAL_ADDRESS"])
        command = [
            str(venv_binary("temporal")), "server", "start-dev",
            "--ip", host, "--port", str(port),
            "--db-filename", str(self.var_dir / "temporal.db"),
            "--log-level", "error",
        ]  # fmt: skip
        for attribute in SEARCH_ATTRIBUTES:
            command += ["--search-attribute", f"{attribute.name}=Keyword"]
        if self.ui_port:
            codec = "http://{}:{}".format(*split_address(self.env["CODEC_SERVER_ADDRESS"]))
            command += ["--ui-port", str(self.ui_port), "--ui-codec-endpoint", codec]
        else:
            command += ["--headless"]
        process = self._spawn("temporal", command)
        wait_for_port(host, port, timeout=60, process=process)
        return process

    def start_smtp_sink(self) -> subprocess.Popen[bytes]:
        host, port = self.env["SMTP_HOST"], int(self.env["SMTP_PORT"])
        process = self._spawn(
            "smtp-sink",
            [sys.executable, "-m", "registration.devtools.smtp_sink", "--host", host,
             "--port", str(port), "--mail-dir", self.env["MAIL_DIR"]],
        )  # fmt: skip
        wait_for_port(host, port, timeout=30, process=process)
        return process

    def start_worker(
        self, name: str = "worker", extra_env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        return self._spawn(name, [sys.executable, str(PROJECT_ROOT / "worker.py")], extra_env)

    def start_server(
        self, name: str = "server", extra_env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        env = {**self.env, **(extra_env or {})}
        process = self._spawn(name, [sys.executable, str(PROJECT_ROOT / "server.py")], extra_env)
        host, port = split_address(env["GRPC_ADDRESS"])
        wait_for_port(host, port, timeout=60, process=process)
        return process

    def start_web(
        self, name: str = "web", extra_env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """The pages behind the emails' links, where PUBLIC_BASE_URL points."""
        env = {**os.environ, **self.env, **(extra_env or {})}  # what the child reads
        listen = Settings(
            _env_file=None,
            public_base_url=env.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000"),
            web_address=env.get("WEB_ADDRESS") or None,
        ).web_listen_address()
        process = self._spawn(
            name, [sys.executable, "-m", "registration.entrypoints.web"], extra_env
        )
        host, port = split_address(listen)
        wait_for_port(host, port, timeout=60, process=process)
        return process

    def stop(self, name: str) -> None:
        process = self.processes.pop(name)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def kill(self, name: str) -> None:
        """SIGKILL, as a crash: no shutdown code of the process runs."""
        process = self.processes.pop(name)
        process.kill()
        process.wait()

    def stop_all(self) -> None:
        for name in reversed(list(self.processes)):
            self.stop(name)
        for log in self._logs:
            log.close()
        self._logs.clear()

    def log_of(self, name: str) -> Path:
        """The file where process `name` writes its output (only with a log_dir)."""
        if self.log_dir is None:
            raise RuntimeError("this stack writes to the terminal, not to log files")
        return self.log_dir / f"{name}.log"

    def exited(self) -> dict[str, int]:
        return {n: p.returncode for n, p in self.processes.items() if p.poll() is not None}

    def _spawn(
        self, name: str, command: list[str], extra_env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        if name in self.processes and self.processes[name].poll() is None:
            raise RuntimeError(f"{name} is running already")
        output: IO[bytes] | None = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            output = open(self.log_of(name), "ab")  # noqa: SIM115 (closed in stop_all)
            self._logs.append(output)
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "registration.devtools.die_with_parent",
                str(os.getpid()),
                *command,
            ],
            env={**os.environ, **self.env, **(extra_env or {})},
            cwd=PROJECT_ROOT,
            stdout=output,
            stderr=subprocess.STDOUT if output else None,
            # Own session: a Ctrl-C in the terminal reaches only this launcher, which then
            # stops the children in order instead of all of them dying at once.
            start_new_session=True,
        )
        self.processes[name] = process
        return process


# For what drives many calls from one address on purpose (the tests, the load run, the
# benchmark): abuse limits that never bite.
UNLIMITED_CALLS = {
    "RATE_LIMIT_EMAILS_PER_SOURCE": "1000000000/1h",
    "RATE_LIMIT_EMAILS_PER_MAILBOX": "1000000000/1h",
    "RATE_LIMIT_NOTIFICATIONS_PER_MAILBOX": "1000000000/1h",
    "RATE_LIMIT_SIGN_INS": "1000000000/1h",
}


def isolated_env(var_dir: Path) -> dict[str, str]:
    """The settings of a stack of its own: every port free, every file under `var_dir`, so
    that several stacks (tests, the load run) run side by side. Callers add their own."""
    return {
        "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "GRPC_ADDRESS": f"127.0.0.1:{free_port()}",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(free_port()),
        "MAIL_DIR": str(var_dir / "mail"),
        "DATABASE_URL": f"sqlite:///{var_dir / 'registration.db'}",
        "SECRET_KEY_FILE": str(var_dir / "secret.key"),
        "PAYLOAD_KEYS_FILE": str(var_dir / "payload.keys"),
        "GRPC_LOCAL_TOKEN_FILE": str(var_dir / "local-client.token"),
        "CODEC_SERVER_ADDRESS": f"127.0.0.1:{free_port()}",
        "WORKER_METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
        "SERVER_METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{free_port()}",
    }


def stack_settings(env: Mapping[str, str]) -> Settings:
    """The settings the processes of a stack with `env` read (for a client beside them)."""
    return Settings(_env_file=None, **{k.lower(): v for k, v in env.items()})  # type: ignore[arg-type]


def stack_env(settings: Settings, var_dir: Path) -> dict[str, str]:
    """The settings every child gets; files go under the var folder unless set explicitly."""

    def in_var(name: str, default: str) -> str:
        # Set in the environment or .env: honoured; left to its default: under the var folder.
        return str(getattr(settings, name)) if name in settings.model_fields_set else default

    return {
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "TEMPORAL_NAMESPACE": settings.temporal_namespace,
        "TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
        "GRPC_ADDRESS": settings.grpc_address,
        "SMTP_HOST": settings.smtp_host,
        "SMTP_PORT": str(settings.smtp_port),
        "MAIL_DIR": in_var("mail_dir", str(var_dir / "mail")),
        "DATABASE_URL": in_var("database_url", f"sqlite:///{var_dir / 'registration.db'}"),
        "SECRET_KEY_FILE": in_var("secret_key_file", str(var_dir / "secret.key")),
        "PAYLOAD_KEYS_FILE": in_var("payload_keys_file", str(var_dir / "payload.keys")),
        "GRPC_LOCAL_TOKEN_FILE": in_var(
            "grpc_local_token_file", str(var_dir / "local-client.token")
        ),
        "CODEC_SERVER_ADDRESS": settings.codec_server_address,
        "PUBLIC_BASE_URL": settings.public_base_url,
        "WEB_ADDRESS": settings.web_listen_address(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m registration.devtools.launcher",
        description="Apply pending database migrations, then run the SMTP sink, the codec "
        "endpoint, the Temporal dev server and web UI, the worker, the gRPC server and the web "
        "pages in the foreground; Ctrl-C stops them all. Other settings come from the "
        "environment (see the README).",
    )
    parser.add_argument(
        "--var-dir", type=Path, default=Path("var"), help="state folder (default: var)"
    )
    parser.add_argument(
        "--ui-port", type=int, default=8233, help="Temporal web UI port (default: 8233)"
    )
    parser.add_argument("--headless", action="store_true", help="run Temporal without its web UI")
    args = parser.parse_args(argv)

    settings = load_settings(needs_secrets=False)
    var_dir = args.var_dir.resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    stack = DevStack(
        var_dir=var_dir,
        env=stack_env(settings, var_dir),
        ui_port=None if args.headless else args.ui_port,
    )

    stopping = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, request_stop)
    code = 0
    try:
        stack.start_all()
        print_endpoints(settings, stack)
        while not stopping:
            if dead := stack.exited():
                print(f"stopping everything: {dead} exited", file=sys.stderr, flush=True)
                code = 1
                break
            time.sleep(0.3)
    except (OSError, RuntimeError, TimeoutError) as err:
        print(f"cannot start the stack: {err}", file=sys.stderr, flush=True)
        code = 1
    finally:
        print("stopping…", flush=True)
        stack.stop_all()
        print("stopped.", flush=True)
    sys.exit(code)


def print_endpoints(settings: Settings, stack: DevStack) -> None:
    ui = f"http://127.0.0.1:{stack.ui_port}" if stack.ui_port else "disabled (--headless)"
    lines = [
        "",
        "The registration stack is running:",
        f"  gRPC API            {settings.grpc_address}   (registration.v1.RegistrationService)",
        f"  Temporal frontend   {settings.temporal_address}",
        f"  Temporal web UI     {ui}",
        f"  codec endpoint      http://{stack.env['CODEC_SERVER_ADDRESS']}  (for the web UI)",
        f"  SMTP sink           {settings.smtp_host}:{settings.smtp_port}",
        f"  mailbox             {stack.env['MAIL_DIR']}  (one .eml file per message)",
        f"  database            {stack.env['DATABASE_URL']}",
    ]
    token = Path(stack.env["GRPC_LOCAL_TOKEN_FILE"])
    if token.exists():
        lines += [
            f"  client token        {token}  (every permission; the CLI and the web pages use it)",
            f'  grpcurl -plaintext -H "authorization: Bearer $(cat {token})" '
            f"{settings.grpc_address} list",
        ]
    lines += [
        "Try it:  .venv/bin/python -m registration register you@example.com",
        "Ctrl-C stops everything.",
        "",
    ]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
