"""The dataclasses that pass through Temporal: what the data converter needs of them."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from workflows import contracts

CONTRACTS = [
    cls
    for _, cls in inspect.getmembers(contracts, dataclasses.is_dataclass)
    if isinstance(cls, type) and cls.__module__ == contracts.__name__
]


def test_every_contract_is_found() -> None:
    names = {cls.__name__ for cls in CONTRACTS}
    assert {"RegistrationInput", "RegistrationState", "SendEmailInput"} <= names


@pytest.mark.parametrize("cls", CONTRACTS, ids=lambda cls: cls.__name__)
def test_field_types_are_types_not_strings(cls: type) -> None:
    """The data converter reads the type hints on every decode; hints kept as strings (a
    `from __future__ import annotations` in contracts.py) are evaluated again each time."""
    assert [f.name for f in dataclasses.fields(cls) if isinstance(f.type, str)] == []
