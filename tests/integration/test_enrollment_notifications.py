"""Organizer notifications end to end: the real dev server, workers, SQLite and an SMTP
server. An order delivered twice sends one email; a missing template holds the email until it
is put back; a notification queue with no worker never slows registration."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from temporalio.client import WorkflowExecutionStatus

from registration.adapters.temporal.connect import connect_temporal
from registration.bootstrap import build_services
from registration.domain.identifiers import workflow_id_for_notification
from registration.domain.statuses import RegistrationStatus
from registration.services.notifications import EnrollmentRequest
from registration.v1 import registration_pb2 as pb
from tests.databases import BACKENDS as DATABASE_BACKENDS
from tests.integration.harness import Stack, token_of
from tests.integration.mail_world import MailWorld, run_mail_world

# The repository and end-to-end path runs on both databases.
BACKENDS = DATABASE_BACKENDS

SUBJECT = "Enrolled: {{ enrollee_name }} in {{ offering_name }}"
SENDER = "Shop Notifications <orders@shop.example>"


@pytest.fixture(scope="module")
async def world(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MailWorld]:
    root = tmp_path_factory.mktemp("notification-world")
    async for world in run_mail_world(
        stack,
        root,
        verification_reminder="false",
        enrollment_subject=SUBJECT,
        enrollment_sender=SENDER,
    ):
        yield world


def order(organizer: str, order_id: str | None = None) -> pb.NotifyEnrollmentRequest:
    return pb.NotifyEnrollmentRequest(
        order_id=order_id or f"order-{uuid.uuid4().hex[:10]}",
        organizer_email=organizer,
        organizer_name="Olga Organizer",
        enrollee_name="Eddie Enrollee",
        enrollee_email="eddie@example.net",
        offering_name="Pottery for Beginners",
    )


def new_organizer() -> str:
    return f"organizer-{uuid.uuid4().hex[:8]}@example.com"


async def notification(world: MailWorld, notification_id: str) -> pb.Notification:
    reply = await world.stub.GetNotification(
        pb.GetNotificationRequest(notification_id=notification_id)
    )
    return reply.notification


async def wait_for_delivery(
    world: MailWorld, notification_id: str, status: int, within: float = 60
) -> pb.Notification:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        shown = await notification(world, notification_id)
        if shown.delivery.status == status:
            return shown
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the notification never reached {status}:\n{shown}")
        await asyncio.sleep(0.1)


async def test_the_same_order_delivered_twice_sends_one_email(world: MailWorld) -> None:
    organizer = new_organizer()
    request = order(organizer)

    # Delivered twice at once (a queue redelivering), then once more after it was sent.
    first, second = await asyncio.gather(
        world.stub.NotifyEnrollment(request), world.stub.NotifyEnrollment(request)
    )
    assert first.notification_id == second.notification_id
    shown = await wait_for_delivery(world, first.notification_id, pb.DELIVERY_STATUS_SENT)
    third = await world.stub.NotifyEnrollment(request)
    assert third.notification_id == first.notification_id

    [message] = await world.smtp.wait_for(organizer)
    await asyncio.sleep(1)  # long enough for a second email to show up, were there one
    assert len(world.smtp.messages_to(organizer)) == 1

    assert message["Subject"] == "Enrolled: Eddie Enrollee in Pottery for Beginners"
    assert message["From"] == SENDER
    assert message["Message-ID"] == shown.delivery.message_id
    body = message.get_body(preferencelist=("plain",)).get_content()
    for value in ("Olga Organizer", "Eddie Enrollee", "Pottery for Beginners", request.order_id):
        assert value in body

    assert shown.order_id == request.order_id
    assert shown.recipient == organizer
    assert shown.kind == pb.EMAIL_KIND_ENROLLMENT
    assert shown.delivery.attempts == 1


async def test_a_missing_template_holds_the_email_until_it_is_put_back(
    world: MailWorld,
) -> None:
    template = world.templates_dir / "enrollment.html"
    kept = template.read_text()
    template.unlink()
    organizer = new_organizer()
    try:
        notified = await world.stub.NotifyEnrollment(order(organizer))
        deadline = asyncio.get_running_loop().time() + 60
        while (
            "enrollment.html"
            not in (await notification(world, notified.notification_id)).delivery.last_error
        ):
            assert asyncio.get_running_loop().time() < deadline, "the template was never named"
            await asyncio.sleep(0.1)
        waiting = await notification(world, notified.notification_id)
        assert waiting.delivery.status == pb.DELIVERY_STATUS_PENDING
        assert "not found" in waiting.delivery.last_error
        await asyncio.sleep(1.5)  # it keeps waiting: nothing sent, nothing dropped
        assert world.smtp.messages_to(organizer) == []
    finally:
        template.write_text(kept)

    await world.smtp.wait_for(organizer)
    shown = await wait_for_delivery(world, notified.notification_id, pb.DELIVERY_STATUS_SENT)
    assert shown.delivery.attempts == 1


async def test_a_refused_organizer_address_ends_failed_and_harms_nothing(
    world: MailWorld,
) -> None:
    organizer = new_organizer()
    world.smtp.refuse_always("550 5.1.1 mailbox unavailable", recipient=organizer)
    notified = await world.stub.NotifyEnrollment(order(organizer))
    shown = await wait_for_delivery(world, notified.notification_id, pb.DELIVERY_STATUS_FAILED)
    assert "550" in shown.delivery.last_error
    assert organizer not in shown.delivery.last_error
    assert shown.delivery.attempts == 1


async def test_bad_orders_are_refused_with_the_fields_at_fault(world: MailWorld) -> None:
    bad = pb.NotifyEnrollmentRequest(
        order_id="",
        organizer_email="not an address",
        enrollee_name="Eddie\nBcc: everyone@example.com",
        offering_name="x" * 500,
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await world.stub.NotifyEnrollment(bad)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = caught.value.details() or ""
    for field in ("order_id", "organizer_email", "enrollee_name", "offering_name"):
        assert field in details

    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await world.stub.GetNotification(pb.GetNotificationRequest(notification_id="a" * 26))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_notification_queue_without_workers_never_slows_registration(
    world: MailWorld,
) -> None:
    # A server whose notifications go to a queue no worker polls (a backlog, an outage).
    stalled = world.settings.model_copy(
        update={"notification_task_queue": f"nobody-polls-{uuid.uuid4().hex[:8]}"}
    )
    client = await connect_temporal(stalled)
    services = build_services(stalled, client, world.engine)
    organizer = new_organizer()
    notification_id = await services.notifications.notify_enrollment(
        EnrollmentRequest(
            order_id=f"order-{uuid.uuid4().hex[:10]}",
            organizer_email=organizer,
            organizer_name="",
            enrollee_name="Eddie Enrollee",
            offering_name="Pottery for Beginners",
        )
    )
    handle = client.get_workflow_handle(workflow_id_for_notification(notification_id))
    try:
        # Registration through the same services goes on as if nothing were waiting.
        address = f"meanwhile-{uuid.uuid4().hex[:8]}@example.com"
        await services.registration.register(
            email=address, password="correct horse battery staple", source="192.0.2.1"
        )
        [message] = await world.smtp.wait_for(address)
        verified = await services.registration.verify(token=token_of(message))
        assert verified.status is RegistrationStatus.ACTIVE

        description = await handle.describe()
        assert description.status is WorkflowExecutionStatus.RUNNING
        assert world.smtp.messages_to(organizer) == []
    finally:
        await handle.terminate("test over")
