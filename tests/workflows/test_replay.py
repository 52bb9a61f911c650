"""Workflows already in flight must survive a code change: every saved history of a real run
(tests/histories/, written by scripts/save_histories.py) replays against today's workflow code
without a nondeterminism error. A change that would break one fails here; it must go through
`workflow.patched()` (docs/changing-workflows.md)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.worker import Replayer

from registration.adapters.temporal.payload_codec import (
    WORKFLOW_ID_METADATA,
    PayloadKeys,
    encrypted_data_converter,
)
from workflows.account_email import AccountEmailWorkflow
from workflows.enrollment_notification import EnrollmentNotificationWorkflow
from workflows.password_reset import PasswordResetWorkflow
from workflows.registration import RegistrationWorkflow
from workflows.registration_attempt import RegistrationAttemptNoticeWorkflow
from workflows.signal_guard import SignalGuard

HISTORIES = Path(__file__).resolve().parents[1] / "histories"
SAVED = sorted(HISTORIES.glob("*.json"))
WORKFLOWS = [
    RegistrationWorkflow,
    PasswordResetWorkflow,
    AccountEmailWorkflow,
    EnrollmentNotificationWorkflow,
    RegistrationAttemptNoticeWorkflow,
]


def history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(workflow_id_of(path), path.read_text())


def workflow_id_of(path: Path) -> str:
    """The run's workflow ID as its start input names it: a payload bound to its workflow
    carries it (and is refused under any other). Older histories' payloads name none."""
    started: dict[str, Any] = events(path)[0]["workflowExecutionStartedEventAttributes"]  # type: ignore[assignment]
    for payload in started.get("input", {}).get("payloads", []):
        if workflow_id := payload["metadata"].get(WORKFLOW_ID_METADATA):
            return base64.b64decode(workflow_id).decode()
    return path.stem


def events(path: Path) -> list[dict[str, object]]:
    loaded: dict[str, list[dict[str, object]]] = json.loads(path.read_text())
    return loaded["events"]


def activity_types(path: Path) -> list[str]:
    return [
        str(event["activityTaskScheduledEventAttributes"]["activityType"]["name"])  # type: ignore[index]
        for event in events(path)
        if "activityTaskScheduledEventAttributes" in event
    ]


@pytest.mark.parametrize("path", SAVED, ids=[p.stem for p in SAVED])
async def test_a_saved_history_replays_on_todays_code(path: Path) -> None:
    replayer = Replayer(
        workflows=WORKFLOWS,
        interceptors=[SignalGuard()],
        # The namespace the histories ran in: a payload is bound to it too.
        namespace="default",
        data_converter=encrypted_data_converter(
            # Histories saved before payloads were bound to their workflow, as an operator
            # upgrading would accept them while those runs finish: a new key first, the old
            # one in PAYLOAD_LEGACY_KEY_IDS.
            PayloadKeys.parse(
                PayloadKeys.generate_entry("today")
                + "\n"
                + (HISTORIES / "payload.keys").read_text()
            ),
            legacy_key_ids=["histories"],
        ),
    )
    result = await replayer.replay_workflow(history(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


BOUND = sorted(HISTORIES.glob("*.workflow-bound-payloads.json"))


@pytest.mark.parametrize("path", BOUND, ids=[p.stem for p in BOUND])
async def test_a_history_of_workflow_bound_payloads_replays_with_no_legacy_key(path: Path) -> None:
    replayer = Replayer(
        workflows=WORKFLOWS,
        interceptors=[SignalGuard()],
        # The namespace the histories ran in: a payload is bound to it too.
        namespace="default",
        data_converter=encrypted_data_converter(
            PayloadKeys.parse((HISTORIES / "payload.keys").read_text())
        ),
    )
    result = await replayer.replay_workflow(history(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


def patch_ids(path: Path) -> list[str]:
    """The patches a run took, from its markers (which Temporal's core writes in plain JSON)."""
    found = []
    for event in history(path).events:
        details = event.marker_recorded_event_attributes.details
        if "patch-data" in details:
            [patch] = details["patch-data"].payloads
            found.append(str(DataConverter.default.payload_converter.from_payload(patch)["id"]))
    return found


def signal_names(path: Path) -> list[str]:
    return [
        str(event["workflowExecutionSignaledEventAttributes"]["signalName"])  # type: ignore[index]
        for event in events(path)
        if "workflowExecutionSignaledEventAttributes" in event
    ]


def test_signals_without_proof_were_ignored_in_the_histories_saved_since() -> None:
    """A `verify` signal and a `requested` one without its proof, as anyone with Temporal
    access could send them: the runs took the `signals-carry-proof` path and went on as if
    they had not come (the registration verified by its link, the reset used once)."""
    verified = HISTORIES / "registration_verified.workflow-bound-payloads.json"
    assert signal_names(verified) == ["verify"]
    assert "signals-carry-proof" in patch_ids(verified)
    reset = HISTORIES / "password_reset_used.workflow-bound-payloads.json"
    assert signal_names(reset) == ["requested", "requested"]
    assert "signals-carry-proof" in patch_ids(reset)
    assert activity_types(reset).count("send_email") == 1  # the one link, never sent again


def test_every_workflow_has_saved_histories() -> None:
    types = {
        str(event["workflowExecutionStartedEventAttributes"]["workflowType"]["name"])  # type: ignore[index]
        for path in SAVED
        for event in events(path)[:1]
    }
    assert types == {w.__name__ for w in WORKFLOWS}


def test_the_histories_took_the_paths_they_are_named_for() -> None:
    by_name = {p.stem: activity_types(p) for p in SAVED}
    assert "activate_user" in by_name["registration_verified"]
    assert "expire_user" in by_name["registration_expired"]
    # The reminder went out before the expiry: two sends.
    assert by_name["registration_expired"].count("send_email") >= 2
    assert "start_new_verification" in by_name["registration_resent"]
    failed = by_name["registration_email_failed"]
    assert "record_delivery_failure" in failed and "start_new_verification" in failed
    assert "complete_password_reset" in by_name["password_reset_used"]
    assert "expire_password_reset" in by_name["password_reset_expired"]
    assert by_name["password_reset_no_account"] == ["open_password_reset"]


def marker_names(path: Path) -> list[str]:
    return [
        str(event["markerRecordedEventAttributes"]["markerName"])  # type: ignore[index]
        for event in events(path)
        if "markerRecordedEventAttributes" in event
    ]


def test_since_the_patch_the_database_steps_are_local_activities() -> None:
    """The histories saved before `database-steps-as-local-activities` ran the database steps
    as activities (above); those saved after it run them as local activities: markers in the
    history, and only the sends left as activities. Both kinds replay."""
    verified = HISTORIES / "registration_verified.local-database-steps.json"
    assert activity_types(verified) == ["send_email", "send_email"]
    assert marker_names(verified).count("core_local_activity") == 2  # persist, activate
    reset = HISTORIES / "password_reset_used.local-database-steps.json"
    assert not {"open_password_reset", "complete_password_reset"} & set(activity_types(reset))
    assert "core_local_activity" in marker_names(reset)
