"""How our own clients — the web pages, the CLI, the container health probe, the load run and
the benchmark — reach the gRPC API: over TLS with GRPC_CA_FILE (and GRPC_CLIENT_CERT_FILE for
mutual TLS), presenting the bearer token of GRPC_TOKEN (or of the local client's file).

A token never travels in the clear beyond a loopback address.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import grpc

from registration.settings import Settings, is_loopback, split_address


def open_channel(settings: Settings, address: str | None = None) -> grpc.aio.Channel:
    """An asyncio channel to `address` (default GRPC_ADDRESS)."""
    target, credentials, options = _connection(settings, address)
    token = _token(settings, target, credentials)
    interceptors: list[grpc.aio.ClientInterceptor] = (
        [_AioBearer(token), _AioStreamBearer(token)] if token else []
    )
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
    return grpc.aio.secure_channel(target, credentials, options=options, interceptors=interceptors)


def open_sync_channel(settings: Settings, address: str | None = None) -> grpc.Channel:
    """A blocking channel to `address` (default GRPC_ADDRESS), for command-line tools."""
    target, credentials, options = _connection(settings, address)
    channel = (
        grpc.insecure_channel(target, options=options)
        if credentials is None
        else grpc.secure_channel(target, credentials, options=options)
    )
    if token := _token(settings, target, credentials):
        return grpc.intercept_channel(channel, _SyncBearer(token))
    return channel


def _connection(
    settings: Settings, address: str | None
) -> tuple[str, grpc.ChannelCredentials | None, list[tuple[str, Any]]]:
    s = settings
    target = address or s.grpc_address
    options: list[tuple[str, Any]] = []
    if s.grpc_ca_file is None and s.grpc_client_cert_file is None:
        return target, None, options
    credentials = grpc.ssl_channel_credentials(
        root_certificates=s.grpc_ca_file.read_bytes() if s.grpc_ca_file else None,
        private_key=s.grpc_client_key_file.read_bytes() if s.grpc_client_key_file else None,
        certificate_chain=(
            s.grpc_client_cert_file.read_bytes() if s.grpc_client_cert_file else None
        ),
    )
    if s.grpc_server_name:
        options.append(("grpc.ssl_target_name_override", s.grpc_server_name))
    return target, credentials, options


def _token(
    settings: Settings, target: str, credentials: grpc.ChannelCredentials | None
) -> str | None:
    token = settings.client_token()
    if token is not None and credentials is None and not is_loopback(split_address(target)[0]):
        raise ValueError(
            f"a bearer token travels only over TLS (GRPC_CA_FILE) or to a loopback address, "
            f"not in the clear to {target}"
        )
    return token


def _with_token(metadata: Any, token: str) -> list[tuple[str, str]]:
    return [*(metadata or ()), ("authorization", f"Bearer {token}")]


class _CallDetails(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: bool | None
    compression: Any


class _SyncBearer(grpc.UnaryUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    def __init__(self, token: str) -> None:
        self._token = token

    def _details(self, details: Any) -> _CallDetails:
        return _CallDetails(
            details.method,
            details.timeout,
            _with_token(details.metadata, self._token),
            details.credentials,
            details.wait_for_ready,
            details.compression,
        )

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_stream(
        self, continuation: Callable[..., Any], details: Any, requests: Any
    ) -> Any:
        return continuation(self._details(details), requests)


def _aio_details(details: Any, token: str) -> grpc.aio.ClientCallDetails:
    return grpc.aio.ClientCallDetails(
        details.method,
        details.timeout,
        grpc.aio.Metadata(*_with_token(details.metadata, token)),
        details.credentials,
        details.wait_for_ready,
    )


class _AioBearer(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return await continuation(_aio_details(details, self._token), request)


class _AioStreamBearer(grpc.aio.StreamStreamClientInterceptor):
    # Reflection is a stream both ways.
    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_stream_stream(
        self, continuation: Callable[..., Any], details: Any, requests: Any
    ) -> Any:
        return await continuation(_aio_details(details, self._token), requests)
