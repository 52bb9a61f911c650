"""The real stack for integration tests: Temporal dev server (SQLite file), SMTP sink, worker
and gRPC server as separate processes on free ports, with state in a temporary folder."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import grpc
import pytest

from registration.db import build_engine
from registration.devstack import DevStack, free_port
from registration.v1 import registration_pb2_grpc as pb_grpc
from tests.integration.harness import Stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    var_dir = tmp_path_factory.mktemp("stack")
    grpc_address = f"127.0.0.1:{free_port()}"
    env = {
        "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "TEMPORAL_NAMESPACE": "default",
        "TEMPORAL_TASK_QUEUE": "registration",
        "GRPC_ADDRESS": grpc_address,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(free_port()),
        "MAIL_DIR": str(var_dir / "mail"),
        "DATABASE_URL": f"sqlite:///{var_dir / 'registration.db'}",
        "SECRET_KEY_FILE": str(var_dir / "secret.key"),
        "PAYLOAD_KEYS_FILE": str(var_dir / "payload.keys"),
        "CODEC_SERVER_ADDRESS": f"127.0.0.1:{free_port()}",
        "EMAIL_RETRY_INITIAL_INTERVAL": "200ms",
        "LOG_LEVEL": "INFO",
    }
    devstack = DevStack(var_dir=var_dir, env=env, ui_port=None, log_dir=var_dir / "logs")
    try:
        devstack.start_all()
        yield Stack(
            devstack=devstack,
            var_dir=var_dir,
            mail_dir=var_dir / "mail",
            engine=build_engine(env["DATABASE_URL"]),
            grpc_address=grpc_address,
        )
    finally:
        devstack.stop_all()
        for log in sorted((var_dir / "logs").glob("*.log")):
            # Shown by pytest only when a test failed: the processes' own account.
            print(f"----- {log.name} -----\n{log.read_text(errors='replace')[-5000:]}")


@pytest.fixture(autouse=True)
def stack_processes_stay_up(request: pytest.FixtureRequest) -> Iterator[None]:
    """A process of the stack that died fails the test that saw it, at once and by name,
    instead of later tests timing out."""
    yield
    if "stack" in request.fixturenames:
        stack: Stack = request.getfixturevalue("stack")
        assert stack.devstack.exited() == {}, "stack processes exited"


@pytest.fixture(scope="session")
async def channel(stack: Stack) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(stack.grpc_address) as channel:
        yield channel


@pytest.fixture(scope="session")
def stub(channel: grpc.aio.Channel) -> pb_grpc.RegistrationServiceStub:
    return pb_grpc.RegistrationServiceStub(channel)
