"""A signal whose arguments fit no parameters of its handler is dropped, with a warning.

Anyone who can reach Temporal can send any signal with any arguments. Without this, the SDK
would call the handler with them, the call would raise, and the workflow task would fail —
and fail again on every retry, since the signal stays in the history: one malformed signal
would stop its workflow for good. The worker runs every workflow behind this guard.
"""

from __future__ import annotations

import inspect

from temporalio import workflow
from temporalio.worker import (
    HandleSignalInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)


class SignalGuard(Interceptor):
    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return _GuardedSignals


class _GuardedSignals(WorkflowInboundInterceptor):
    async def handle_signal(self, input: HandleSignalInput) -> None:
        handler = workflow.get_signal_handler(input.signal)
        if handler is not None:
            try:
                inspect.signature(handler).bind(*input.args)
            except TypeError:
                workflow.logger.warning(
                    "signal %r dropped: its %d arguments fit no handler",
                    input.signal,
                    len(input.args),
                )
                return
        await super().handle_signal(input)
