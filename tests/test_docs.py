"""The README and docs/ stay true to the code and to each other: the settings table documents
every setting the code reads and nothing else, every relative link resolves, and the README
stays short enough to read in five minutes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from registration.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_LIMIT = 12_000

# [text](target) and ![alt](target); the target ends at whitespace or the closing parenthesis.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1[^\n]*$", flags=re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", flags=re.MULTILINE)


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def prose(text: str) -> str:
    """The text without code blocks and code spans, where brackets are not links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, spaces to '-', punctuation but '-' and '_'
    dropped (after the Markdown of links and code is reduced to its text)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").strip().lower()
    text = "".join(char for char in text if char.isalnum() or char in " -_")
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's slug in a Markdown file; repeated headings get -1, -2… as on GitHub."""
    seen: dict[str, int] = {}
    result: set[str] = set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text())):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """Each relative link of a Markdown file that names no file, folder or heading."""
    problems: list[str] = []
    for target in LINK.findall(prose(path.read_text())):
        if re.match(r"^(https?:|mailto:)", target):
            continue
        file_part, _, fragment = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        name = f"{path.relative_to(root)}: ({target})"
        if not linked.exists():
            problems.append(f"{name} names no file or folder")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            problems.append(f"{name} names no heading of {linked.name}")
    return problems


def test_settings_table_matches_the_settings_object() -> None:
    section = (DOCS / "settings.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", section, flags=re.MULTILINE))
    assert documented == {name.upper() for name in Settings.model_fields}


def test_readme_starts_with_the_two_commands() -> None:
    first_block = README.read_text().split("```sh", 1)[1].split("```", 1)[0]
    assert [line.split()[:2] for line in first_block.strip().splitlines()] == [
        ["make", "run"],
        ["make", "test"],
    ]


def test_readme_is_short() -> None:
    size = len(README.read_bytes())  # as `wc -c` counts
    assert size < README_LIMIT, f"README.md has {size} bytes; keep it under {README_LIMIT}"


@pytest.mark.parametrize("path", markdown_files(), ids=lambda path: path.name)
def test_relative_links_resolve(path: Path) -> None:
    problems = broken_links(path)
    assert not problems, "\n".join(problems)


def test_a_broken_link_is_found(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## A heading, with `code`\n")
    (tmp_path / "folder").mkdir()
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n"
        "[fine](other.md#a-heading-with-code) [here](#page) [dir](folder)\n"
        "[web](https://example.com/x) [mail](mailto:a@example.com) `[code](missing.md)`\n"
        "[no file](missing.md) [no heading](other.md#nowhere) [not here](#nowhere)\n"
    )
    assert broken_links(page, root=tmp_path) == [
        "page.md: (missing.md) names no file or folder",
        "page.md: (other.md#nowhere) names no heading of other.md",
        "page.md: (#nowhere) names no heading of page.md",
    ]
