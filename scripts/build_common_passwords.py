"""Rebuild src/registration/adapters/data/common-passwords.txt.

The list is zxcvbn's ranked "passwords" frequency list (MIT licence; drawn from public
password leaks), kept to the entries of 8 characters or more (shorter ones fail the length
rule anyway), case-folded. It is committed as data; zxcvbn is needed only to rebuild it:

    .venv/bin/pip install zxcvbn && .venv/bin/python scripts/build_common_passwords.py
"""

from __future__ import annotations

from pathlib import Path

from zxcvbn.frequency_lists import FREQUENCY_LISTS  # type: ignore[import-untyped]

OUT = Path(__file__).resolve().parent.parent / "src/registration/adapters/data/common-passwords.txt"
MIN_LENGTH = 8


def main() -> None:
    seen: dict[str, None] = {}
    for password in FREQUENCY_LISTS["passwords"]:
        folded = password.casefold()
        if len(folded) >= MIN_LENGTH:
            seen.setdefault(folded, None)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(seen) + "\n")
    print(f"wrote {len(seen)} passwords to {OUT}")


if __name__ == "__main__":
    main()
