"""The README documents every setting the code reads, and nothing it does not."""

from __future__ import annotations

import re
from pathlib import Path

from registration.settings import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_readme_settings_table_matches_the_settings_object() -> None:
    section = README.split("## Settings", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", section, flags=re.MULTILINE))
    assert documented == {name.upper() for name in Settings.model_fields}


def test_readme_starts_with_the_two_commands() -> None:
    first_block = README.split("```sh", 1)[1].split("```", 1)[0]
    assert [line.split()[:2] for line in first_block.strip().splitlines()] == [
        ["make", "run"],
        ["make", "test"],
    ]
