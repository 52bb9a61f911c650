"""Makes sure the namespace knows the workflows' search attributes before a worker polls:
an attribute the server does not know fails every workflow task that sets it."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

log = logging.getLogger(__name__)


class SearchAttributesMissing(RuntimeError):
    """The namespace lacks attributes and they could not be added."""


async def ensure_search_attributes(client: Client, keys: Iterable[SearchAttributeKey[Any]]) -> None:
    """Adds any of `keys` the namespace lacks, as Keyword attributes."""
    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
        known = {**listed.system_attributes, **listed.custom_attributes}
    except RPCError as err:
        # Temporal's time-skipping test server adds attributes but cannot list them.
        if err.status is not RPCStatusCode.UNIMPLEMENTED:
            raise
        known = {}
    missing = {key.name: key for key in keys if key.name not in known}
    if not missing:
        return
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=client.namespace,
                search_attributes={
                    name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for name in missing
                },
            )
        )
    except RPCError as err:
        commands = "; ".join(
            f"temporal operator search-attribute create --namespace {client.namespace} "
            f"--name {name} --type Keyword"
            for name in missing
        )
        raise SearchAttributesMissing(
            f"the namespace {client.namespace!r} lacks the search attributes "
            f"{', '.join(missing)} and they could not be added ({err.message}): {commands}"
        ) from err
    log.info("search attributes added: %s", ", ".join(missing))
