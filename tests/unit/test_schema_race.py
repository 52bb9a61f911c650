"""Processes that create the schema at the same moment on a fresh database all succeed
(the worker and the server do exactly this when started side by side)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

RACER = """
import sys, time
from registration.db import build_engine, create_schema
engine = build_engine(sys.argv[1])
start = float(sys.argv[2])
while time.time() < start:
    pass
create_schema(engine)
"""


def test_concurrent_schema_creation_never_fails(tmp_path: Path) -> None:
    for round_ in range(5):
        url = f"sqlite:///{tmp_path}/race-{round_}.db"
        start = time.time() + 0.7  # both processes imported and waiting by then
        racers = [
            subprocess.Popen([sys.executable, "-c", RACER, url, str(start)], stderr=subprocess.PIPE)
            for _ in range(3)
        ]
        for racer in racers:
            _, err = racer.communicate(timeout=60)
            assert racer.returncode == 0, err.decode()
