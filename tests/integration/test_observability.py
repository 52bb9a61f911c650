"""What an operator sees: Prometheus metrics of the gRPC server and of the worker after real
traffic, and search attributes that list, say, pending registrations whose email failed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from registration.devtools.launcher import free_port
from registration.domain.identifiers import workflow_id_for_registration
from registration.domain.statuses import DeliveryStatus, RegistrationStatus
from registration.v1 import registration_pb2 as pb
from registration.v1 import registration_pb2_grpc as pb_grpc
from tests.integration.harness import Stack, token_of
from tests.integration.mail_world import MailWorld, run_mail_world
from workflows.search_attributes import EMAIL_DELIVERY_STATUS, REGISTRATION_STATUS

PASSWORD = "correct horse battery staple"
SERVICE = "registration.v1.RegistrationService"


async def scrape(address: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample at http://ADDRESS/metrics, keyed by name and labels."""
    async with httpx.AsyncClient() as client:
        reply = await client.get(f"http://{address}/metrics", timeout=10)
    reply.raise_for_status()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_the_server_counts_and_times_requests_per_method_and_code(
    stack: Stack, stub: pb_grpc.RegistrationServiceStub
) -> None:
    address = stack.devstack.env["SERVER_METRICS_ADDRESS"]
    before = await scrape(address)
    ok = {"grpc_service": SERVICE, "grpc_method": "RegisterUser", "grpc_code": "OK"}
    missing = {"grpc_service": SERVICE, "grpc_method": "GetRegistration", "grpc_code": "NOT_FOUND"}

    await stub.RegisterUser(
        pb.RegisterUserRequest(
            email=f"metrics-{uuid.uuid4().hex[:8]}@example.com", password=PASSWORD
        )
    )
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.GetRegistration(
            pb.GetRegistrationRequest(registration_id="a" * 26 + "_" + "0" * 16)
        )

    after = await scrape(address)
    assert (
        value(after, "grpc_server_handled_total", **ok)
        == value(before, "grpc_server_handled_total", **ok) + 1
    )
    assert (
        value(after, "grpc_server_handled_total", **missing)
        == value(before, "grpc_server_handled_total", **missing) + 1
    )
    timed = {"grpc_service": SERVICE, "grpc_method": "RegisterUser"}
    assert value(after, "grpc_server_handling_seconds_count", **timed) >= 1
    assert value(after, "grpc_server_handling_seconds_sum", **timed) > 0


async def test_the_worker_exports_the_sdk_metrics(
    stack: Stack, stub: pb_grpc.RegistrationServiceStub
) -> None:
    address = f"worker-metrics-{uuid.uuid4().hex[:8]}@example.com"
    await stub.RegisterUser(pb.RegisterUserRequest(email=address, password=PASSWORD))
    await stack.wait_for_message(address)

    samples = await scrape(stack.devstack.env["WORKER_METRICS_ADDRESS"])
    names = {name for name, _ in samples}
    assert any(name.startswith("temporal_") for name in names)

    def executed(metric: str) -> set[str | None]:
        return {
            dict(labels).get("activity_type") for name, labels in samples if name.startswith(metric)
        }

    assert "send_email" in executed("temporal_activity_execution_latency")
    # The database steps run as local activities, measured apart.
    assert "create_pending_user" in executed("temporal_local_activity_execution_latency")
    assert any(name.startswith("temporal_workflow_task_execution_latency") for name in names)


@pytest.fixture(scope="module")
async def world(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MailWorld]:
    root = tmp_path_factory.mktemp("observability-world")
    async for world in run_mail_world(stack, root, verification_reminder="false"):
        yield world


async def listed(world: MailWorld, query: str, workflow_id: str, within: float = 60) -> None:
    """Waits until `query` lists the workflow (visibility follows the workflow shortly)."""
    client = await world.temporal_client()
    deadline = asyncio.get_running_loop().time() + within
    while True:
        ids = [w.id async for w in client.list_workflows(query)]
        if workflow_id in ids:
            return
        assert asyncio.get_running_loop().time() < deadline, f"{query!r} never listed it"
        await asyncio.sleep(0.3)


async def test_search_attributes_list_pending_registrations_whose_email_failed(
    world: MailWorld,
) -> None:
    failing = f"bounced-{uuid.uuid4().hex[:8]}@example.com"
    world.smtp.refuse_always("550 5.1.1 mailbox unavailable", recipient=failing)
    failed = await world.stub.RegisterUser(pb.RegisterUserRequest(email=failing, password=PASSWORD))
    fine = f"fine-{uuid.uuid4().hex[:8]}@example.com"
    active = await world.stub.RegisterUser(pb.RegisterUserRequest(email=fine, password=PASSWORD))
    [message] = await world.smtp.wait_for(fine)
    await world.stub.VerifyEmail(pb.VerifyEmailRequest(token=token_of(message)))

    failed_id = workflow_id_for_registration(failed.registration_id)
    active_id = workflow_id_for_registration(active.registration_id)
    await listed(
        world,
        'WorkflowType = "RegistrationWorkflow" AND RegistrationStatus = "PENDING_VERIFICATION" '
        'AND EmailDeliveryStatus = "FAILED"',
        failed_id,
    )
    await listed(world, 'RegistrationStatus = "ACTIVE" AND EmailDeliveryStatus = "SENT"', active_id)

    # States only: no address, no name, nothing personal in them.
    client = await world.temporal_client()
    for workflow_id in (failed_id, active_id):
        attributes = (
            await client.get_workflow_handle(workflow_id).describe()
        ).typed_search_attributes
        assert attributes.get(REGISTRATION_STATUS) in set(RegistrationStatus)
        assert attributes.get(EMAIL_DELIVERY_STATUS) in set(DeliveryStatus)


def probe(*args: str) -> int:
    return subprocess.run(
        [sys.executable, "-m", "registration.entrypoints.health_probe", *args],
        capture_output=True,
        timeout=60,
    ).returncode


async def test_the_container_health_probe_answers_for_every_part(stack: Stack) -> None:
    env = stack.devstack.env
    assert probe("grpc", stack.grpc_address) == 0
    assert probe("http", f"http://{env['WORKER_METRICS_ADDRESS']}/metrics") == 0
    assert probe("http", f"http://{env['CODEC_SERVER_ADDRESS']}/healthz") == 0
    nothing = f"127.0.0.1:{free_port()}"
    assert probe("grpc", nothing) == 1
    assert probe("http", f"http://{nothing}/metrics") == 1
