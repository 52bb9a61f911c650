"""Workflows call activities through their declarations (workflows/activity_interfaces.py); the
worker registers the implementations (src/activities). Each side must match the other: a
name or a type that drifts would fail a running workflow's task, not an import."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from temporalio import activity

from activities.notifications import NotificationActivities
from activities.password_reset import PasswordResetActivities
from activities.registration import RegistrationActivities
from workflows import activity_interfaces


def _definition(fn: Callable[..., Any]) -> activity._Definition:
    found = activity._Definition.from_callable(fn)
    assert found is not None, f"{fn.__qualname__} is not an activity"
    return found


def _declared() -> dict[str, activity._Definition]:
    functions = inspect.getmembers(activity_interfaces, inspect.iscoroutinefunction)
    return {d.name: d for d in (_definition(fn) for _, fn in functions)}


def _implemented() -> dict[str, activity._Definition]:
    found: dict[str, activity._Definition] = {}
    for cls in (RegistrationActivities, PasswordResetActivities, NotificationActivities):
        for _, method in inspect.getmembers(cls, inspect.iscoroutinefunction):
            definition = activity._Definition.from_callable(method)
            if definition is not None:
                assert definition.name not in found, f"{definition.name} implemented twice"
                found[definition.name] = definition
    return found


def test_every_declared_activity_has_an_implementation_of_the_same_types() -> None:
    declared, implemented = _declared(), _implemented()
    assert declared, "no activity is declared"
    assert set(declared) == set(implemented)
    for name, declaration in declared.items():
        implementation = implemented[name]
        assert implementation.arg_types == declaration.arg_types, name
        assert implementation.ret_type == declaration.ret_type, name
