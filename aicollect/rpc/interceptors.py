"""Server interceptors: bearer-token authentication and the one error-mapping layer."""

from __future__ import annotations

import asyncio
import hmac
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

from aicollect import errors, logs
from aicollect.rpc.errors import internal_status, rich_status
from aicollect.rpc.validation import validate_request

log = logging.getLogger(__name__)

# Health and reflection stay open so load balancers and engineers can probe without a token.
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

if TYPE_CHECKING:  # generic only in the stubs
    _ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
    Handler = grpc.RpcMethodHandler[Any, Any]
else:
    _ServerInterceptor = grpc.aio.ServerInterceptor
    Handler = grpc.RpcMethodHandler
Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]]


def _metadata_value(details: grpc.HandlerCallDetails, key: str) -> str | None:
    for k, v in details.invocation_metadata or ():
        if k == key:
            return v if isinstance(v, str) else v.decode("latin-1")
    return None


def _abort_handler(code: grpc.StatusCode, message: str, handler: Handler) -> Handler:
    async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(code, message)

    async def stream(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        await context.abort(code, message)
        yield  # pragma: no cover - unreachable, makes this an async generator

    if handler.unary_stream is not None or handler.stream_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            stream,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return grpc.unary_unary_rpc_method_handler(
        unary,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _settle_abandoned(work: asyncio.Future[Any]) -> None:
    """Collects the outcome of a call whose caller went away (nobody else will)."""
    if not work.cancelled() and work.exception() is not None:
        log.info("a call finished after its caller went away", exc_info=work.exception())


def _adopt_request_id(context: grpc.aio.ServicerContext[Any, Any]) -> None:
    """The caller's ``x-request-id`` (or a new one) for every log line of this call."""
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id":
            text = value if isinstance(value, str) else value.decode("latin-1")
            logs.request_id.set(text[:64])
            return
    logs.request_id.set(uuid.uuid4().hex)


class BearerTokenInterceptor(_ServerInterceptor):
    """Refuses every call without ``authorization: Bearer <internal token>`` (UNAUTHENTICATED)."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("internal token must not be empty")
        self._expected = f"Bearer {token}".encode()

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler:  # grpc-stubs omit the None returned for unknown methods
        handler = await continuation(handler_call_details)
        method = handler_call_details.method or ""
        if handler is None or method.startswith(OPEN_PREFIXES):
            return handler  # type: ignore[return-value]
        presented = _metadata_value(handler_call_details, "authorization") or ""
        if hmac.compare_digest(presented.encode(), self._expected):
            return handler
        log.warning("refused unauthenticated call", extra={"rpc_method": method})
        return _abort_handler(
            grpc.StatusCode.UNAUTHENTICATED,
            "missing or invalid bearer token in 'authorization' metadata",
            handler,
        )


class ErrorMappingInterceptor(_ServerInterceptor):
    """Validates every request first (``validate_request``: NUL characters, unknown enum
    values), then turns DomainError into its status code + ErrorInfo; anything else into a
    bare INTERNAL.

    The traceback of an unexpected error is logged, never sent. ``AbortError`` (a handler that
    aborted on purpose) and ``CancelledError`` pass through untouched.
    """

    def __init__(self) -> None:
        # The wrapped handler of each method, built once (the server's handlers are fixed).
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler:  # grpc-stubs omit the None returned for unknown methods
        handler = await continuation(handler_call_details)
        if handler is None:
            return None  # type: ignore[return-value]
        method = handler_call_details.method or ""
        cached = self._wrapped.get(method)
        if cached is None or cached[0] is not handler:
            cached = self._wrapped[method] = (handler, self._wrap(handler, method))
        return cached[1]

    def _wrap(self, handler: Handler, method: str) -> Handler:
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(handler.unary_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(handler.unary_stream, method),  # type: ignore[arg-type]
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    @staticmethod
    async def _fail(
        context: grpc.aio.ServicerContext[Any, Any], method: str, exc: BaseException
    ) -> None:
        if isinstance(exc, NotImplementedError):
            # The generated base servicer's answer for an RPC a later release implements.
            exc = errors.NotImplementedYet(f"{method} is not implemented yet")
        if isinstance(exc, errors.DomainError):
            code, message, status = rich_status(exc)
            log.info(
                "rpc failed",
                extra={"rpc_method": method, "grpc_code": code.name, "reason": exc.reason},
            )
        else:
            code, message, status = internal_status()
            log.error("rpc crashed", exc_info=exc, extra={"rpc_method": method})
        await context.abort(code, message, trailing_metadata=(("grpc-status-details-bin", status),))

    def _wrap_unary(
        self, behavior: Callable[[Any, Any], Awaitable[Any]], method: str
    ) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            _adopt_request_id(context)
            try:
                validate_request(request)
            except errors.InvalidArgument as exc:
                await self._fail(context, method, exc)
            # A caller that goes away (crash, deadline) cancels this task; the work itself is
            # shielded so that its transaction commits or rolls back instead of being cut off
            # mid-statement with its row locks held.
            work = asyncio.ensure_future(behavior(request, context))
            try:
                return await asyncio.shield(work)
            except asyncio.CancelledError:
                work.add_done_callback(_settle_abandoned)
                raise
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await self._fail(context, method, exc)

        return wrapper

    def _wrap_stream(
        self, behavior: Callable[[Any, Any], AsyncIterator[Any]], method: str
    ) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]:
        async def wrapper(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            _adopt_request_id(context)
            try:
                validate_request(request)
                async for item in behavior(request, context):
                    yield item
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await self._fail(context, method, exc)

        return wrapper
