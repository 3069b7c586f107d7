"""Every TolokaGateway call, the same way: the `Call` context, authentication, errors as statuses,
the call log and metrics, in one server interceptor around the servicer's methods.

The servicer's methods take `(request, call)` and return the response (or yield the stream): the
interceptor turns gRPC's `(Incoming, context)` into that, so a reader (or a tool) follows a
request from the servicer straight into its use case. Decoding never fails before a method runs
(see `gateway.rpc.incoming`), so every call, undecodable or refused by the memory budget
included, is authenticated first, answered with a proper status, logged once and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any

import grpc

from gateway import errors
from gateway.call import Call
from gateway.observability import tracing
from gateway.observability.call_log import log_call
from gateway.observability.metrics import GatewayMetrics
from gateway.rpc.auth import CallerAuth, pools_of
from gateway.rpc.call_context import Context, new_call
from gateway.rpc.incoming import Incoming
from gateway.rpc.status import grpc_code, to_trailers

log = logging.getLogger("gateway.calls")

Unary = Callable[[Any, Call], Awaitable[Any]]
Streaming = Callable[[Any, Call], AsyncIterator[Any]]
Requests = AsyncIterator[Incoming[Any]]
_TRACE_KEYS = frozenset({"traceparent", "tracestate"})
Continuation = Callable[[grpc.HandlerCallDetails], Awaitable["grpc.RpcMethodHandler[Any, Any]"]]


class CallInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Wraps the methods of one service (`service_name`); other services pass through untouched."""

    def __init__(self, *, service_name: str, auth: CallerAuth, metrics: GatewayMetrics | None = None) -> None:
        self._prefix = f"/{service_name}/"
        self._auth = auth
        self._metrics = metrics
        self._wrapped: dict[str, Any] = {}  # method path -> the handler around the servicer's method

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """The servicer's handler with its behaviour wrapped (built once per method)."""
        path = handler_call_details.method
        wrapped = self._wrapped.get(path)
        if wrapped is not None:
            return wrapped  # type: ignore[no-any-return]
        handler = await continuation(handler_call_details)
        if handler is None or not path.startswith(self._prefix):
            return handler
        method = path.removeprefix(self._prefix)
        handler_: Any = handler  # grpc's handlers are namedtuples
        if handler_.unary_unary is not None:
            wrapped = handler_._replace(unary_unary=self._unary(method, handler_.unary_unary))
        elif handler_.unary_stream is not None:
            wrapped = handler_._replace(unary_stream=self._streaming(method, handler_.unary_stream))
        elif handler_.stream_stream is not None:
            wrapped = handler_._replace(stream_stream=self._bidi(method, handler_.stream_stream))
        else:
            return handler
        self._wrapped[path] = wrapped
        return wrapped  # type: ignore[no-any-return]

    def _unary(self, method: str, behaviour: Unary) -> Callable[[Incoming[Any], Context], Awaitable[Any]]:
        async def handle(incoming: Incoming[Any], context: Context) -> Any:
            call = new_call(context, incoming)
            async with self._answered(method, context, call):
                return await behaviour(self._admit(method, incoming, context, call), call)

        return handle

    def _streaming(
        self, method: str, behaviour: Streaming
    ) -> Callable[[Incoming[Any], Context], AsyncIterator[Any]]:
        async def handle(incoming: Incoming[Any], context: Context) -> AsyncIterator[Any]:
            call = new_call(context, incoming)

            def replies() -> AsyncIterator[Any]:
                return behaviour(self._admit(method, incoming, context, call), call)

            async for reply in self._stream(method, context, call, replies):
                yield reply

        return handle

    def _bidi(self, method: str, behaviour: Streaming) -> Callable[[Requests, Context], AsyncIterator[Any]]:
        """A request stream: the caller is authenticated before the first message is read, and each
        message's refusal (undecodable, over the memory budget) ends the call where it stands."""

        async def handle(requests: Requests, context: Context) -> AsyncIterator[Any]:
            call = new_call(context, None)

            def replies() -> AsyncIterator[Any]:
                call.caller = self._auth.identify(context)
                self._authorize(method, (), context, call)
                return behaviour(_messages(requests), call)

            async for reply in self._stream(method, context, call, replies):
                yield reply

        return handle

    async def _stream(
        self, method: str, context: Context, call: Call, replies: Callable[[], AsyncIterator[Any]]
    ) -> AsyncIterator[Any]:
        async with self._answered(method, context, call):
            async for reply in replies():
                yield reply

    @contextlib.asynccontextmanager
    async def _answered(self, method: str, context: Context, call: Call) -> AsyncIterator[None]:
        """Around one call, unary or streaming: an error becomes its status (the abort raises), and
        the call is released, logged and counted once."""
        started = time.perf_counter()
        with _server_span(self._prefix + method, context, call) as span:

            def finish(code: str) -> None:
                call.release_held()
                if span is not None:
                    tracing.end_call(span, code, {"rpc.grpc.status_code": grpc.StatusCode[code].value[0]})
                self._log(method, call, code, started)

            try:
                yield
            except (asyncio.CancelledError, GeneratorExit):  # the caller went away; a stream closed
                finish("CANCELLED")
                raise
            except Exception as exc:
                # Logged and counted before the abort: it sends the status at once, and the caller
                # may look at the call's metrics as soon as it has the status.
                finish(grpc_code(exc).name if isinstance(exc, errors.GatewayError) else "INTERNAL")
                await self._fail(context, call, exc)
                raise  # unreachable: abort raises
            finish("OK")

    def _admit(self, method: str, incoming: Incoming[Any], context: Context, call: Call) -> Any:
        """The request, once the caller is identified and allowed to call (no quota is spent before).

        A request that could not be decoded, or that the memory budget refused, is refused only
        after authentication, so an unauthenticated caller learns nothing and costs one log line.
        """
        call.caller = self._auth.identify(context)
        if incoming.refusal is not None or incoming.message is None:
            self._authorize(method, (), context, call)
            raise incoming.refusal or errors.InvalidArgument("the request is empty")
        self._authorize(method, pools_of(incoming.message), context, call)
        return incoming.message

    def _authorize(self, method: str, pools: Iterable[str], context: Context, call: Call) -> None:
        """The call's Toloka account, then whether the caller may call `method` on `pools` in it
        (a caller's rights may differ by account), then the pools it may use there."""
        call.account = self._auth.account(context, call.caller)
        self._auth.authorize(call.caller, method, pools, call.account)
        call.pools = self._auth.allowed_pools(call.caller, call.account)

    async def _fail(self, context: Context, call: Call, exc: Exception) -> None:
        if isinstance(exc, errors.GatewayError):
            error = exc
        else:
            log.error("unhandled error", exc_info=exc, extra={"request_id": call.request_id})
            error = errors.Internal(f"internal error; quote request id {call.request_id}")
        trailers = to_trailers(error, request_id=call.request_id)
        await context.abort(trailers.code, trailers.message, trailing_metadata=trailers.metadata)

    def _log(self, method: str, call: Call, code: str, started: float) -> None:
        log_call(method, code, started, call, self._metrics)


def _server_span(path: str, context: Context, call: Call) -> contextlib.AbstractContextManager[Any]:
    """The call's server span, continuing the caller's `traceparent` (metadata); None when tracing is off."""
    if not tracing.enabled:
        return contextlib.nullcontext()
    carrier = {
        key: value
        for key, value in context.invocation_metadata() or ()
        if key in _TRACE_KEYS and isinstance(value, str)
    }
    service, _, method = path.strip("/").partition("/")
    attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}
    return _traced(tracing.server_span(path.lstrip("/"), carrier, attributes), call)


@contextlib.contextmanager
def _traced(span: contextlib.AbstractContextManager[tracing.Span], call: Call) -> Iterator[tracing.Span]:
    with span as current:
        call.trace_id = tracing.trace_id(current)
        yield current


async def _messages(requests: Requests) -> AsyncIterator[Any]:
    """The decoded messages of a request stream; a refused one raises its refusal.

    Each message's memory reservation is released as it is handed on: what the use case keeps of
    it is bounded by the use case (an import holds about one batch).
    """
    async for incoming in requests:
        if incoming.reservation is not None:
            incoming.reservation.release()
        if incoming.refusal is not None or incoming.message is None:
            raise incoming.refusal or errors.InvalidArgument("a message of the stream is empty")
        yield incoming.message
