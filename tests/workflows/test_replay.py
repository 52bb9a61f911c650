"""Workflows already in flight must survive a code change: every saved history of a real run
(tests/histories/, written by scripts/save_histories.py) replays against today's workflow code
without a nondeterminism error. A change that would break one fails here; it must go through
`workflow.patched()` (docs/changing-workflows.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from registration.adapters.temporal.payload_codec import PayloadKeys, encrypted_data_converter
from workflows.account_email import AccountEmailWorkflow
from workflows.enrollment_notification import EnrollmentNotificationWorkflow
from workflows.password_reset import PasswordResetWorkflow
from workflows.registration import RegistrationWorkflow
from workflows.registration_attempt import RegistrationAttemptNoticeWorkflow

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
    return WorkflowHistory.from_json(path.stem, path.read_text())


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
        data_converter=encrypted_data_converter(
            PayloadKeys.parse((HISTORIES / "payload.keys").read_text())
        ),
    )
    result = await replayer.replay_workflow(history(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


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
