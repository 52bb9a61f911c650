"""The load run of `make load`, at a size CI can afford: every registration accounted for in
the database, in Temporal and in the mailbox (bench/load.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.chaos
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)
def test_a_load_run_accounts_for_every_registration() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.load", "--registrations", "60"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=560,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "discrepancies: 0" in run.stdout
    assert "database ACTIVE: 30" in run.stdout and "database EXPIRED: 30" in run.stdout
    assert "workflow ACTIVE: 30" in run.stdout and "workflow EXPIRED: 30" in run.stdout
