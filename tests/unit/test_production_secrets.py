"""ENVIRONMENT=production never generates a secret: the processes refuse to start without
SECRET_KEY and PAYLOAD_KEYS (or existing files), and say which one is missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from registration.adapters.db.engine import build_engine
from registration.adapters.db.migrate import upgrade
from registration.adapters.temporal.payload_codec import PayloadKeys

ROOT = Path(__file__).resolve().parents[2]


def start(entry_point: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / entry_point)],
        cwd=tmp_path,  # no .env here, and var/ would be created here
        env={"PATH": "/usr/bin:/bin", "ENVIRONMENT": "production",
             "TEMPORAL_CONNECT_TIMEOUT": "1s", "TEMPORAL_ADDRESS": "127.0.0.1:9", **env},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_server_and_worker_refuse_to_start_without_production_secrets(tmp_path: Path) -> None:
    for entry_point in ("server.py", "worker.py"):
        refused = start(entry_point, tmp_path)
        assert refused.returncode != 0
        assert "ENVIRONMENT=production" in refused.stderr
        assert "SECRET_KEY" in refused.stderr and "PAYLOAD_KEYS" in refused.stderr
    assert not (tmp_path / "var").exists(), "a secret was generated in production"


def test_with_its_secrets_production_gets_past_the_check(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path}/db.sqlite"
    engine = build_engine(database_url)
    upgrade(engine)
    engine.dispose()
    given = start(
        "server.py",
        tmp_path,
        SECRET_KEY="s" * 40,
        PAYLOAD_KEYS=PayloadKeys.generate_entry("prod-1"),
        DATABASE_URL=database_url,
    )
    # It goes on to reach Temporal, which does not listen on port 9.
    assert "ENVIRONMENT=production" not in given.stderr
    assert "Temporal is not reachable" in given.stderr
