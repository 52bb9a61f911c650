"""ruff (lint and format), mypy and the import-linter contracts (the layers) hold for the whole
project, as `make lint` checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy"],
        # lint-imports has no `python -m` form: its script beside this interpreter.
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
    ],
    ids=["ruff-check", "ruff-format", "mypy", "import-layers"],
)
# A cold mypy cache on a fresh clone takes tens of seconds, minutes on a loaded machine.
@pytest.mark.timeout(900)
def test_tool_is_clean(command: list[str]) -> None:
    argv = command if Path(command[0]).is_absolute() else [sys.executable, "-m", *command]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
