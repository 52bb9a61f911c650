"""The real stack for integration tests: Temporal dev server (SQLite file), SMTP sink, worker
and gRPC server as separate processes on free ports, with state in a temporary folder."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import grpc
import pytest

from registration.adapters.db.engine import build_engine
from registration.devtools.launcher import UNLIMITED_CALLS, DevStack, isolated_env
from registration.entrypoints.grpc.client import open_channel
from registration.v1 import registration_pb2_grpc as pb_grpc
from tests.integration.harness import Databases, Stack


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test of the real stack runs on SQLite; a module that sets
    `BACKENDS = ("sqlite", "postgresql")` runs on both (a stack for each)."""
    if "stack" in metafunc.fixturenames:
        backends = getattr(metafunc.module, "BACKENDS", ("sqlite",))
        metafunc.parametrize("stack", backends, indirect=True, scope="session")


@pytest.fixture(scope="session")
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    backend: str = request.param
    var_dir = tmp_path_factory.mktemp(f"stack-{backend}")
    databases = Databases(backend)
    env = {
        **isolated_env(var_dir),
        "DATABASE_URL": databases.new(var_dir / "registration.db"),
        "TEMPORAL_NAMESPACE": "default",
        "TEMPORAL_TASK_QUEUE": "registration",
        "EMAIL_RETRY_INITIAL_INTERVAL": "200ms",
        # Effectively unthrottled: on this busy machine the dev server's task-queue rate
        # limiter held sends back far longer than its rate (docs/behaviour.md).
        "EMAIL_SENDS_PER_SECOND": "1000",
        **UNLIMITED_CALLS,
        "LOG_LEVEL": "INFO",
    }
    devstack = DevStack(var_dir=var_dir, env=env, ui_port=None, log_dir=var_dir / "logs")
    try:
        devstack.start_all()
        engine = build_engine(env["DATABASE_URL"])
        yield Stack(
            devstack=devstack,
            var_dir=var_dir,
            mail_dir=var_dir / "mail",
            engine=engine,
            grpc_address=env["GRPC_ADDRESS"],
            databases=databases,
        )
        engine.dispose()
    finally:
        devstack.stop_all()
        databases.drop_all()
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
    async with open_channel(stack.settings) as channel:
        yield channel


@pytest.fixture(scope="session")
def stub(channel: grpc.aio.Channel) -> pb_grpc.RegistrationServiceStub:
    return pb_grpc.RegistrationServiceStub(channel)
