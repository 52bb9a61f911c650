"""The rules of who may call the gRPC API, as configured: every method has a permission, no
configuration means no caller in production, a call with several tokens is believed for none,
every kind of handler is checked, a token never travels in the clear beyond loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from pydantic import ValidationError

from registration.entrypoints.grpc.callers import (
    PERMISSION_OF_METHOD,
    SERVICE_NAME,
    CallerCheck,
    Callers,
    token_digest,
)
from registration.entrypoints.grpc.client import open_channel, open_sync_channel
from registration.settings import GrpcClient, Settings
from registration.v1 import registration_pb2 as pb

pytestmark = pytest.mark.usefixtures("clean_environment")


def test_every_method_of_the_service_asks_for_a_permission() -> None:
    methods = {m.name for m in pb.DESCRIPTOR.services_by_name["RegistrationService"].methods}
    assert set(PERMISSION_OF_METHOD) == methods


def test_production_without_callers_refuses_to_start() -> None:
    settings = Settings(_env_file=None, environment="production")
    with pytest.raises(SystemExit, match="GRPC_CLIENTS names no client"):
        Callers.from_settings(settings)
    assert not Path("var/local-client.token").exists()


def test_development_without_callers_makes_one_local_client(tmp_path: Path) -> None:
    token_file = tmp_path / "local.token"
    settings = Settings(_env_file=None, grpc_local_token_file=token_file)
    Callers.from_settings(settings)
    assert token_file.stat().st_mode & 0o077 == 0
    assert settings.client_token() == token_file.read_text().strip()


def test_listed_callers_replace_the_local_client(tmp_path: Path) -> None:
    token_file = tmp_path / "local.token"
    settings = Settings(
        _env_file=None,
        grpc_local_token_file=token_file,
        grpc_clients=[GrpcClient(name="crm", certificate="crm", permissions=["back_office"])],
    )
    Callers.from_settings(settings)
    assert not token_file.exists()


def test_a_caller_proves_itself_somehow() -> None:
    with pytest.raises(ValidationError, match="needs token_sha256 or certificate"):
        GrpcClient(name="nobody", permissions=["public"])
    with pytest.raises(ValidationError):
        GrpcClient(name="shop", token_sha256="the-token-itself", permissions=["public"])


SHOP = GrpcClient(name="shop", token_sha256=token_digest("shop"), permissions=["public"])
REGISTER = f"/{SERVICE_NAME}/RegisterUser"


class Aborted(Exception):
    pass


@dataclass
class FakeContext:
    metadata: list[tuple[str, str]] = field(default_factory=list)
    aborted: tuple[grpc.StatusCode, str] | None = None
    served: bool = False
    written: list[Any] = field(default_factory=list)

    def invocation_metadata(self) -> list[tuple[str, str]]:
        return self.metadata

    def peer(self) -> str:
        return "ipv4:127.0.0.1:5000"

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}

    async def write(self, message: Any) -> None:
        self.written.append(message)

    async def abort(self, code: grpc.StatusCode, message: str) -> None:
        self.aborted = (code, message)
        raise Aborted


def test_a_call_with_several_tokens_is_believed_for_none() -> None:
    callers = Callers([SHOP])
    one: Any = FakeContext([("authorization", "Bearer shop")])
    assert callers.refusal(REGISTER, one) is None
    several: Any = FakeContext([("authorization", "Bearer shop"), ("authorization", "Bearer x")])
    refused = callers.refusal(REGISTER, several)
    assert refused is not None and refused.code is grpc.StatusCode.UNAUTHENTICATED


async def answer_once(request: Any, context: Any) -> str:
    context.served = True
    return "done"


async def answer_many(request: Any, context: Any) -> AsyncIterator[str]:
    context.served = True
    yield "done"


async def write_many(request: Any, context: Any) -> None:
    """A streaming handler that writes its answers (gRPC health's Watch is one)."""
    context.served = True
    await context.write("done")


@pytest.mark.parametrize(
    ("make", "inner"),
    [
        (grpc.unary_unary_rpc_method_handler, answer_once),
        (grpc.stream_unary_rpc_method_handler, answer_once),
        (grpc.unary_stream_rpc_method_handler, answer_many),
        (grpc.stream_stream_rpc_method_handler, answer_many),
        (grpc.unary_stream_rpc_method_handler, write_many),
    ],
    ids=["unary", "client streaming", "server streaming", "bidirectional", "written stream"],
)
async def test_every_kind_of_handler_is_checked(make: Any, inner: Any) -> None:
    async def continuation(_details: Any) -> Any:
        return make(inner)

    @dataclass
    class Details:
        method: str = REGISTER

    handler: Any = await CallerCheck(Callers([SHOP])).intercept_service(continuation, Details())
    [wrapped] = [
        h
        for h in (
            handler.unary_unary,
            handler.stream_unary,
            handler.unary_stream,
            handler.stream_stream,
        )
        if h is not None
    ]

    async def call(context: FakeContext) -> list[Any]:
        answer = wrapped(None, context)
        if inner is answer_many:
            return [reply async for reply in answer]
        returned = await answer
        return context.written if inner is write_many else [returned]

    stranger = FakeContext()
    with pytest.raises(Aborted):
        await call(stranger)
    assert stranger.aborted is not None and stranger.aborted[0] is grpc.StatusCode.UNAUTHENTICATED
    assert not stranger.served
    shop = FakeContext([("authorization", "Bearer shop")])
    assert await call(shop) == ["done"] and shop.served


def test_a_token_travels_in_the_clear_only_to_loopback() -> None:
    settings = Settings(_env_file=None, grpc_token="a-token")
    with pytest.raises(ValueError, match="only over TLS"):
        open_sync_channel(settings, "10.0.0.8:50051")
    open_sync_channel(settings, "127.0.0.1:50051").close()


async def test_an_asyncio_channel_keeps_the_same_rule() -> None:
    settings = Settings(_env_file=None, grpc_token="a-token")
    with pytest.raises(ValueError, match="only over TLS"):
        open_channel(settings, "registration.example:50051")
    await open_channel(settings, "localhost:50051").close()
