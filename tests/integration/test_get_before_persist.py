"""GetRegistration answers from the workflow's state while the database does not know the
registration yet (the moments between RegisterUser's answer and the persist activity)."""

from __future__ import annotations

import uuid

import pytest
from temporalio.worker import Worker

from registration.bootstrap import build_services
from registration.domain.errors import NotFound
from registration.domain.statuses import DeliveryStatus, RegistrationStatus
from tests.databases import BACKENDS as DATABASE_BACKENDS
from tests.integration.harness import Stack
from tests.workflows.fakes import FakeActivities
from workflows.registration import RegistrationWorkflow

# The repository and end-to-end path runs on both databases.
BACKENDS = DATABASE_BACKENDS


async def test_unpersisted_registration_is_read_from_the_workflow(stack: Stack) -> None:
    # A task queue of its own, served by activities that never write the database.
    settings = stack.settings.model_copy(update={"temporal_task_queue": f"q-{uuid.uuid4()}"})
    client = await stack.temporal_client()
    service = build_services(settings, client, stack.engine).registration
    address = f"early-{uuid.uuid4().hex[:8]}@example.com"
    async with Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=[RegistrationWorkflow],
        activities=FakeActivities().all(),
    ):
        registered = await service.register(
            email=address, password="correct horse battery", source="192.0.2.1"
        )
        assert stack.users(address) == []

        record = await service.get(registration_id=registered.registration_id)
        assert record.email == address
        assert record.status is RegistrationStatus.PENDING_VERIFICATION
        assert record.expires_at == registered.expires_at
        assert [d.status for d in record.deliveries] in (
            [DeliveryStatus.PENDING],
            [DeliveryStatus.SENT],
        )

        # Same address key, another registration: the workflow's state is not its own.
        other = registered.registration_id.rsplit("_", 1)[0] + "_" + "0" * 16
        with pytest.raises(NotFound):
            await service.get(registration_id=other)

        await client.get_workflow_handle(
            f"registration-{registered.registration_id.split('_')[0]}"
        ).terminate("test over")
