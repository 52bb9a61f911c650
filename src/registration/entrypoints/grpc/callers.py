"""Who calls the gRPC API, and what each caller may call.

Every call proves who makes it: a bearer token of GRPC_CLIENTS in the `authorization` metadata
(`Bearer …`; only its SHA-256 is configured), or a client certificate signed by the CA of
GRPC_TLS_CLIENT_CA_FILE whose common name GRPC_CLIENTS lists. A token, when one is sent,
decides; a bad token is refused even beside a good certificate. grpcio cannot ask for a client
certificate without demanding one, so with GRPC_TLS_CLIENT_CA_FILE every connection presents
one, and without it callers prove themselves with tokens.

Then each method asks for a permission: browser-facing ones `public`, back-office ones
`back_office`, the way Ory Kratos keeps its public and admin APIs apart. No proof answers
UNAUTHENTICATED, too few permissions PERMISSION_DENIED. gRPC health stays open to load
balancers; reflection needs a caller, any caller.
"""

from __future__ import annotations

import hashlib
import inspect
import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import grpc

from registration.entrypoints.grpc.messages import SERVICE_NAME
from registration.settings import GrpcClient, GrpcPermission, Settings

log = logging.getLogger(__name__)

PUBLIC: GrpcPermission = "public"
BACK_OFFICE: GrpcPermission = "back_office"
# Every method of the service, and the permission it asks for. A method missing here is
# refused to everyone (a test keeps the table complete).
PERMISSION_OF_METHOD: dict[str, GrpcPermission] = {
    "RegisterUser": PUBLIC,
    "VerifyEmail": PUBLIC,
    "ResendVerificationEmail": PUBLIC,
    "Authenticate": PUBLIC,
    "RequestPasswordReset": PUBLIC,
    "ResetPassword": PUBLIC,
    "GetRegistrationStatus": PUBLIC,
    "GetRegistration": BACK_OFFICE,
    "ConfirmRegistration": BACK_OFFICE,
    "NotifyEnrollment": BACK_OFFICE,
    "GetNotification": BACK_OFFICE,
}
OPEN_SERVICES = frozenset({"grpc.health.v1.Health"})
LOCAL_CLIENT = "local"
# Where a caller trusted to forward it (`forwards_addresses`) says an end user's call came from.
END_USER_ADDRESS = "end-user-address"
# The source of the call being served: what the abuse limits count it under.
_CALL_SOURCE: ContextVar[str] = ContextVar("call_source", default="unknown")


def call_source() -> str:
    """The network address the call being served comes from: the end user's, as a trusted
    caller forwards it, else the connection's peer."""
    return _CALL_SOURCE.get()


@dataclass(frozen=True)
class Refusal:
    code: grpc.StatusCode
    message: str


class Callers:
    """The callers of GRPC_CLIENTS, found by token or by certificate."""

    def __init__(self, clients: Sequence[GrpcClient]) -> None:
        self._by_token = {c.token_sha256: c for c in clients if c.token_sha256}
        self._by_certificate = {c.certificate: c for c in clients if c.certificate}

    @classmethod
    def from_settings(cls, settings: Settings) -> Callers:
        """GRPC_CLIENTS; outside production with none configured, the one local client with
        every permission (its token file is made now, before the server listens)."""
        clients = list(settings.grpc_clients)
        if (token := settings.local_client_token()) is not None:
            clients.append(
                GrpcClient(
                    name=LOCAL_CLIENT,
                    token_sha256=token_digest(token),
                    permissions=[PUBLIC, BACK_OFFICE],
                    forwards_addresses=True,  # the web pages of `make run` use it
                )
            )
        if not clients:
            raise SystemExit("server: GRPC_CLIENTS names no client: nobody could call the API")
        return cls(clients)

    def refusal(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> Refusal | None:
        """Why the caller of `method` (`/package.Service/Method`) may not call it; None when
        it may."""
        service, _, name = method.lstrip("/").rpartition("/")
        if service in OPEN_SERVICES:
            return None
        caller = self._identify(context)
        if isinstance(caller, Refusal):
            return caller
        _CALL_SOURCE.set(source_of(caller, context))
        if service != SERVICE_NAME:
            return None  # reflection: any caller may learn the API's shape
        needed = PERMISSION_OF_METHOD.get(name)
        if needed is None or needed not in caller.permissions:
            log.warning("client %r refused %s: it lacks %s", caller.name, name, needed)
            return Refusal(
                grpc.StatusCode.PERMISSION_DENIED,
                f"client {caller.name!r} may not call {name} (it needs {needed})",
            )
        return None

    def _identify(self, context: grpc.aio.ServicerContext[Any, Any]) -> GrpcClient | Refusal:
        tokens = [v for k, v in context.invocation_metadata() or () if k == "authorization"]
        if len(tokens) > 1:
            # Which one a proxy in between reads is anyone's guess: believe none.
            return Refusal(grpc.StatusCode.UNAUTHENTICATED, "the call carries several tokens")
        if tokens:
            scheme, _, token = str(tokens[0]).partition(" ")
            client = self._by_token.get(token_digest(token.strip()))
            if scheme.lower() != "bearer" or client is None:
                return Refusal(grpc.StatusCode.UNAUTHENTICATED, "the bearer token is not valid")
            return client
        names = context.auth_context().get("x509_common_name", [])
        for name in names:
            if (client := self._by_certificate.get(name.decode())) is not None:
                return client
        if names:
            return Refusal(
                grpc.StatusCode.UNAUTHENTICATED,
                "the client certificate names no client of GRPC_CLIENTS",
            )
        return Refusal(
            grpc.StatusCode.UNAUTHENTICATED,
            "this call needs a credential: a bearer token or a client certificate",
        )


def source_of(caller: GrpcClient, context: grpc.aio.ServicerContext[Any, Any]) -> str:
    if caller.forwards_addresses:
        forwarded = [v for k, v in context.invocation_metadata() or () if k == END_USER_ADDRESS]
        if forwarded and (address := _address(str(forwarded[-1]))) is not None:
            return address
    # "ipv4:203.0.113.7:50001", "ipv6:[2001:db8::1]:50001", or a Unix socket's path.
    peer = context.peer() or "unknown"
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        return _address(rest.rpartition(":")[0].strip("[]")) or peer
    return peer


def _address(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def token_digest(token: str) -> str:
    """What GRPC_CLIENTS keeps of a token (`token_sha256`)."""
    return hashlib.sha256(token.encode()).hexdigest()


class CallerCheck(grpc.aio.ServerInterceptor):
    """Runs Callers.refusal before every call's handler; a refusal aborts the call."""

    def __init__(self, callers: Callers) -> None:
        self._callers = callers

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        callers = self._callers

        async def check(context: Any) -> None:
            # The context is grpc.aio's, whatever the stubs say of the handler's types.
            if (refused := callers.refusal(method, context)) is not None:
                await context.abort(refused.code, refused.message)

        # The stubs type handlers as grpc's synchronous ones; under grpc.aio they are async.
        for kind, make in (
            ("unary_unary", grpc.unary_unary_rpc_method_handler),
            ("unary_stream", grpc.unary_stream_rpc_method_handler),
            ("stream_unary", grpc.stream_unary_rpc_method_handler),
            ("stream_stream", grpc.stream_stream_rpc_method_handler),
        ):
            if (inner := getattr(handler, kind)) is not None:
                # A streaming handler either yields its answers or writes them with
                # context.write and returns (as gRPC health's Watch does).
                checked = (
                    _checked_stream(inner, check)
                    if inspect.isasyncgenfunction(inner)
                    else _checked(inner, check)
                )
                return make(
                    checked,
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
        return None  # a handler of no kind known here is served to no one: UNIMPLEMENTED


def _checked(inner: Any, check: Callable[[Any], Awaitable[None]]) -> Any:
    async def answered(request: Any, context: Any) -> Any:
        await check(context)
        return await inner(request, context)

    return answered


def _checked_stream(inner: Any, check: Callable[[Any], Awaitable[None]]) -> Any:
    async def streamed(request: Any, context: Any) -> AsyncIterator[Any]:
        await check(context)
        async for response in inner(request, context):
            yield response

    return streamed
