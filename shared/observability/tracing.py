"""OpenTelemetry traces: incoming HTTP, outgoing httpx, SQL and ARQ jobs as one trace per story.

The exporter comes from the settings (TRACING_EXPORTER: none, console, otlp). With "none" no
provider exists and every hook below returns after one attribute check, so the hot paths pay
nothing; tests attach an in-memory exporter (`attach_memory_exporter`) to record spans.

The W3C `traceparent` crosses process boundaries: httpx requests carry it, the ASGI middleware
continues it, and jobs carry it with the correlation id in their `_trace` keyword argument
(`inject_job_context` at enqueue time, `traced_job` in the worker). Every span gets the
correlation id as the attribute `correlation_id`.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import httpx
from arq import Retry
from arq.typing import WorkerCoroutine
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.config import Settings
from shared.observability.logging import correlation_id_var

TRACER_NAME = "appointments"
TRACE_KEY = "_trace"  # the job kwarg (and outbox payload key) carrying the trace context
MAX_STATEMENT_CHARS = 500
_TRACE_HEADERS = (b"traceparent", b"tracestate")
_propagator = TraceContextTextMapPropagator()


@dataclass
class _State:
    provider: TracerProvider | None = None
    tracer: trace.Tracer = field(default_factory=trace.NoOpTracer)
    service: str | None = None


_state = _State()


# --- set-up -------------------------------------------------------------------------------------


def configure_tracing(service: str, settings: Settings) -> None:
    """Set up this process's tracing once (later calls are no-ops), exporter from settings."""
    if _state.service is not None:
        return
    _state.service = service
    exporter = _exporter(settings)
    if exporter is not None:
        _provider().add_span_processor(BatchSpanProcessor(exporter))


def _exporter(settings: Settings) -> SpanExporter | None:
    if settings.tracing_exporter == "console":
        return ConsoleSpanExporter(out=sys.stdout)
    if settings.tracing_exporter == "otlp":
        # Imported here: only processes that export over OTLP load its HTTP stack.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=settings.otlp_endpoint, timeout=settings.otlp_timeout_s)
    return None


def _provider() -> TracerProvider:
    if _state.provider is None:
        resource = Resource.create({SERVICE_NAME: _state.service or TRACER_NAME})
        _state.provider = TracerProvider(resource=resource)
        _state.tracer = _state.provider.get_tracer(TRACER_NAME)
    return _state.provider


def attach_memory_exporter() -> InMemorySpanExporter:
    """Tests: from now on, hand every finished span to an in-memory exporter (synchronously)."""
    exporter = InMemorySpanExporter()
    _provider().add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def reset_tracing() -> None:
    """Tests: flush and drop the provider; back to the unconfigured, recording-nothing state."""
    if _state.provider is not None:
        _state.provider.shutdown()
    _state.provider = None
    _state.tracer = trace.NoOpTracer()
    _state.service = None


def enabled() -> bool:
    return _state.provider is not None


def _correlation() -> dict[str, str]:
    cid = correlation_id_var.get()
    return {"correlation_id": cid} if cid else {}


# --- incoming HTTP ------------------------------------------------------------------------------


class TracingMiddleware:
    """A SERVER span per request, "METHOD /route/template", continuing the caller's trace."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _state.provider is None:
            await self.app(scope, receive, send)
            return
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope.get("headers", [])
            if name in _TRACE_HEADERS
        }
        method = scope.get("method", "")
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        with _state.tracer.start_as_current_span(
            method, context=_propagator.extract(carrier), kind=SpanKind.SERVER
        ) as span:
            try:
                await self.app(scope, receive, send_status)
            finally:
                # Read after the app ran: the route is known only after routing, and the Retell
                # endpoint replaces the correlation id with the call id.
                route: str | None = getattr(scope.get("route"), "path", None)
                span.update_name(f"{method} {route or 'unmatched'}")
                span.set_attributes(
                    {"http.method": method, "http.status_code": status, **_correlation()}
                )
                if route is not None:
                    span.set_attribute("http.route", route)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))


# --- SQL ----------------------------------------------------------------------------------------


def instrument_engine(engine: AsyncEngine) -> None:
    """CLIENT spans "SQL <VERB>" for the engine's statements (no parameters recorded); only
    inside a recording span, so start-up queries and untraced work cost one check."""
    sync_engine = engine.sync_engine
    if event.contains(sync_engine, "before_cursor_execute", _before_execute):
        return
    event.listen(sync_engine, "before_cursor_execute", _before_execute)
    event.listen(sync_engine, "after_cursor_execute", _after_execute)
    event.listen(sync_engine, "handle_error", _on_error)


def _before_execute(
    conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool
) -> None:
    if _state.provider is None or context is None:
        return
    if not trace.get_current_span().is_recording():
        return
    verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
    dialect = conn.dialect
    context._otel_span = _state.tracer.start_span(
        f"SQL {verb}",
        kind=SpanKind.CLIENT,
        attributes={
            "db.system": "mariadb" if getattr(dialect, "is_mariadb", False) else dialect.name,
            "db.statement": statement[:MAX_STATEMENT_CHARS],
            **_correlation(),
        },
    )


def _after_execute(
    _conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any, _many: bool
) -> None:
    span: Span | None = getattr(context, "_otel_span", None)
    if span is not None:
        context._otel_span = None
        span.end()


def _on_error(exception_context: Any) -> None:
    context = exception_context.execution_context
    span: Span | None = getattr(context, "_otel_span", None)
    if span is not None:
        context._otel_span = None
        span.record_exception(exception_context.original_exception)
        span.set_status(Status(StatusCode.ERROR))
        span.end()


def sql_span(statement: str, system: str) -> AbstractContextManager[Any]:
    """The span of a statement sent outside an instrumented engine (shared/db/raw_sql.py),
    as `_before_execute` names it; nothing outside a recording span."""
    if _state.provider is None or not trace.get_current_span().is_recording():
        return nullcontext()
    verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
    return _state.tracer.start_as_current_span(
        f"SQL {verb}",
        kind=SpanKind.CLIENT,
        attributes={
            "db.system": system,
            "db.statement": statement[:MAX_STATEMENT_CHARS],
            **_correlation(),
        },
    )


# --- outgoing HTTP ------------------------------------------------------------------------------


class TracingTransport(httpx.AsyncBaseTransport):
    """Wraps a transport: a CLIENT span "HTTP METHOD host" per request, `traceparent` sent."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if _state.provider is None:
            return await self._inner.handle_async_request(request)
        with _state.tracer.start_as_current_span(
            f"HTTP {request.method} {request.url.host}", kind=SpanKind.CLIENT
        ) as span:
            if span.is_recording():
                span.set_attributes(
                    {
                        "http.method": request.method,
                        # No query string: it may carry personal data (attendee e-mails).
                        "http.url": str(request.url.copy_with(query=None)),
                        "server.address": request.url.host,
                        **_correlation(),
                    }
                )
            _propagator.inject(request.headers)
            response = await self._inner.handle_async_request(request)
            span.set_attribute("http.status_code", response.status_code)
            if response.status_code >= 500:
                span.set_status(Status(StatusCode.ERROR))
            return response

    async def aclose(self) -> None:
        await self._inner.aclose()


# Idle connections are dropped after 4 s, before a server with uvicorn's default keep-alive
# (5 s) closes them: reusing a connection the server is closing reads a reset, not an answer.
OUTBOUND_KEEPALIVE_S = 4.0


def outbound_limits(max_connections: int) -> httpx.Limits:
    """Pool limits for our outbound clients: as many idle connections kept as open ones.

    httpcore 1.0.9 closes "surplus" idle connections whenever the pool holds more connections
    than `max_keepalive_connections` (httpx's default: 20), counting busy ones too, and may
    close one it has just handed to a waiting request: that request then reads a reset
    (encode/httpcore#1110, seen here as a `ReadError` under 50 concurrent requests). With
    both limits equal that pass never fires, and a single-origin pool never closes an idle
    connection to make room either."""
    return httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=OUTBOUND_KEEPALIVE_S,
    )


OUTBOUND_LIMITS = outbound_limits(100)


def traced_transport(
    transport: httpx.AsyncBaseTransport | None = None, *, limits: httpx.Limits | None = None
) -> httpx.AsyncBaseTransport:
    """The transport for an `httpx.AsyncClient(transport=...)`: `transport` (default: a new
    pooled HTTP transport with `limits`, which a client given a transport ignores) traced."""
    if transport is None:
        transport = httpx.AsyncHTTPTransport(limits=limits or OUTBOUND_LIMITS)
    return TracingTransport(transport)


# --- jobs ---------------------------------------------------------------------------------------


def inject_job_context() -> dict[str, str]:
    """The current trace context and correlation id, for a job to continue; empty when nothing
    is traced, so that jobs are enqueued exactly as without tracing."""
    if _state.provider is None:
        return {}
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    if not carrier:
        return {}
    carrier.update(_correlation())
    return carrier


def traced_job(coroutine: WorkerCoroutine, name: str, queue: str) -> WorkerCoroutine:
    """Wrap an ARQ job: its `_trace` kwarg (if any) sets the correlation id and becomes the
    parent of a CONSUMER span "job <name>" around the run."""

    @functools.wraps(coroutine)
    async def run(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> Any:
        carrier: Mapping[str, str] = kwargs.pop(TRACE_KEY, None) or {}
        cid = carrier.get("correlation_id")
        token = correlation_id_var.set(cid) if cid else None
        try:
            if _state.provider is None:
                return await coroutine(ctx, *args, **kwargs)
            with _state.tracer.start_as_current_span(
                f"job {name}",
                context=_propagator.extract(carrier),
                kind=SpanKind.CONSUMER,
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                span.set_attributes(
                    {
                        "job.name": name,
                        "job.id": str(ctx.get("job_id") or ""),
                        "job.try": int(ctx.get("job_try") or 1),
                        "queue": queue,
                        **_correlation(),
                    }
                )
                try:
                    return await coroutine(ctx, *args, **kwargs)
                except Retry as retry:  # a planned retry, not a failure
                    span.add_event("retry", {"defer_s": float(retry.defer_score or 0) / 1000})
                    raise
                except BaseException as exc:  # cancellation (job timeout) included
                    span.record_exception(exc)
                    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                    raise
        finally:
            if token is not None:
                correlation_id_var.reset(token)

    return run
