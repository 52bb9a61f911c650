"""Prometheus metrics of the gRPC server, on SERVER_METRICS_ADDRESS (empty: none): the
requests it handled per method and status code, and how long they took, under the names of
go-grpc-prometheus, which dashboards know."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from registration.settings import split_address

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class GrpcMetrics(grpc.aio.ServerInterceptor):
    """Counts and times every unary call by service, method and status code."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._handled = Counter(
            "grpc_server_handled",
            "RPCs completed on the server, by status code.",
            ["grpc_service", "grpc_method", "grpc_code"],
            registry=registry,
        )
        self._seconds = Histogram(
            "grpc_server_handling_seconds",
            "Time the server took to answer an RPC.",
            ["grpc_service", "grpc_method"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        service, _, method = handler_call_details.method.lstrip("/").rpartition("/")
        behavior = handler.unary_unary

        # The stubs type the context as grpc's synchronous one; under grpc.aio it is the
        # aio context, which has code() just the same.
        async def observed(request: Any, context: Any) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                return await behavior(request, context)
            except BaseException:
                # An abort carries its status on the context; anything else is UNKNOWN.
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            finally:
                self._seconds.labels(service, method).observe(time.perf_counter() - started)
                self._handled.labels(service, method, _code_name(code)).inc()

        return grpc.unary_unary_rpc_method_handler(
            observed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _code_name(code: object) -> str:
    if isinstance(code, grpc.StatusCode):
        return code.name
    # grpc.aio gives the code as an int on some paths.
    return next((c.name for c in grpc.StatusCode if c.value[0] == code), "UNKNOWN")


def serve_metrics(address: str, registry: CollectorRegistry) -> None:
    """Serve `registry` at http://ADDRESS/metrics, in a thread of its own."""
    host, port = split_address(address)
    start_http_server(port, addr=host, registry=registry)
