"""Tracing: one booking through the agent path is one trace, from the signed Retell call over
SQL to the Cal.com sync job, its Cal.com call and the notification job (real ARQ workers on
Redis, the fake Cal.com and SMS gateway over HTTP); exporters none, console and OTLP; a
caller's `traceparent` continues across services. Both backends."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from arq import Retry, Worker
from arq.connections import ArqRedis, create_pool
from arq.jobs import Job
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import select

from services.booking.appointments.policy_client import PolicyClient
from services.booking.worker import WorkerSettings as BookingWorker
from services.booking.worker import calcom_http
from services.notifications.channels.registry import adapters_from_settings
from services.notifications.worker import WorkerSettings as NotifyWorker
from services.notifications.worker import messaging_http
from services.webhooks.ingest.handling import PROCESS_JOB, job_id
from services.webhooks.worker import WorkerSettings as WebhooksWorker
from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.errors import NotFound
from shared.jobs.queue import BOOKING_QUEUE, NOTIFY_QUEUE, WEBHOOKS_QUEUE, redis_settings
from shared.models import ApiCallLog, OutboxEvent
from shared.observability.logging import correlation_id_var
from shared.observability.tracing import (
    TRACE_KEY,
    attach_memory_exporter,
    configure_tracing,
    enabled,
    reset_tracing,
    traced_job,
)
from tests.booking.agent_support import CALLER, call_function, enable_retell, signed
from tests.booking.test_booking_api import at
from tests.conftest import Services
from tests.support.factories import create_salon, next_weekday
from tests.support.fake_calcom import FakeCalcom
from tests.support.fake_messaging import FakeMessagingProvider
from tests.sync.conftest import API_KEY, CalSalon, connect_calcom
from tests.webhooks import load_json

SMS_TOKEN = "sms-token-tracing"
CALLER_TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
CALLER_SPAN_ID = 0xB7AD6B7169203331
CALLER_TRACEPARENT = f"00-{CALLER_TRACE_ID:032x}-{CALLER_SPAN_ID:016x}-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span of the test, recorded in memory; tracing back to "none" afterwards."""
    reset_tracing()
    exporter = attach_memory_exporter()
    yield exporter
    reset_tracing()


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeCalcom]:
    async with FakeCalcom(api_keys=[API_KEY]) as running:
        yield running


@pytest.fixture(scope="module")
def sms_gateway() -> Iterator[FakeMessagingProvider]:
    with FakeMessagingProvider(token=SMS_TOKEN) as provider:
        yield provider


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[ArqRedis]:
    redis = await create_pool(redis_settings(settings))
    yield redis
    await redis.aclose()


async def agent_salon(db: Database, fake: FakeCalcom) -> CalSalon:
    """A salon whose agent may call (Retell key) and whose company syncs to the fake Cal.com."""
    salon = await create_salon(db, buffer_after=0)
    await enable_retell(db, salon)
    return await connect_calcom(db, salon, fake, duration=30)


async def outbox_rows(db: Database, appointment_id: str) -> dict[str, OutboxEvent]:
    async with db.transaction(SYSTEM, write=False) as session:
        rows = await session.scalars(
            select(OutboxEvent).where(OutboxEvent.aggregate_id == appointment_id)
        )
        return {row.job_name: row for row in rows}


async def keep_only(pool: ArqRedis, queue: str, job_id: str) -> None:
    """Drop other tests' leftover jobs from `queue`: the suite shares one Redis database."""
    foreign = [raw.decode() for raw in await pool.zrange(queue, 0, -1) if raw.decode() != job_id]
    if foreign:
        await pool.zrem(queue, *foreign)
        await pool.delete(*(f"arq:job:{job}" for job in foreign))


async def burst(settings_cls: Any, queue: str, ctx: dict[str, Any], settings: Settings) -> Worker:
    """The service's worker functions (as `arq` runs them) on `queue` until it is empty."""
    worker = Worker(
        functions=settings_cls.functions,
        queue_name=queue,
        redis_settings=redis_settings(settings),
        burst=True,
        poll_delay=0.05,
        keep_result=0,
        ctx=ctx,
        handle_signals=False,
    )
    try:
        await worker.main()
    finally:
        await worker.close()
    return worker


def one(found: list[ReadableSpan], what: str) -> ReadableSpan:
    assert len(found) == 1, (what, [s.name for s in found])
    return found[0]


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


async def test_an_agent_booking_is_one_trace_to_the_calcom_sync_and_the_notice(
    services: Services,
    db: Database,
    settings: Settings,
    backend: str,
    pool: ArqRedis,
    fake: FakeCalcom,
    sms_gateway: FakeMessagingProvider,
    spans: InMemorySpanExporter,
) -> None:
    fake.reset()
    sms_gateway.clear()
    cal = await agent_salon(db, fake)
    call_id = f"call_trace_{backend}"
    args = {
        "service": "Herrenhaarschnitt",
        "date": next_weekday(2).isoformat(),
        "time": "10:00",
        "customer_name": "Max Mustermann",
        "staff": "anna",
    }
    response = await call_function(
        services.clients["booking"], cal.salon, "book_appointment", args, call_id=call_id
    )
    assert response.json()["status"] == "booked", response.text
    appointment_id = response.json()["appointment_id"]
    rows = await outbox_rows(db, appointment_id)
    sync_row, notify_row = rows["sync_appointment"], rows["notify"]

    # The booking worker runs the sync job, the notifications worker the notice.
    await keep_only(pool, BOOKING_QUEUE, f"outbox:{sync_row.id}")
    async with calcom_http(settings) as http:
        ctx = {"db": db, "settings": settings, "http": http}
        assert (await burst(BookingWorker, BOOKING_QUEUE, ctx, settings)).jobs_complete == 1
    channels = settings.model_copy(
        update={"sms_provider_url": sms_gateway.url, "sms_provider_token": SMS_TOKEN}
    )
    await keep_only(pool, NOTIFY_QUEUE, f"outbox:{notify_row.id}")
    async with messaging_http(channels) as http:
        ctx = {"db": db, "settings": channels, "adapters": adapters_from_settings(channels, http)}
        assert (await burst(NotifyWorker, NOTIFY_QUEUE, ctx, channels)).jobs_complete == 1
    assert [(m.to, m.channel) for m in sms_gateway.messages] == [(CALLER, "sms")]

    finished = list(spans.get_finished_spans())
    server = one(
        [s for s in finished if s.kind == SpanKind.SERVER and s.name.startswith("POST ")],
        "server span",
    )
    assert server.name == "POST /v1/retell/functions/{name}"
    assert server.parent is None and server.context is not None
    assert dict(server.attributes or {}) == {
        "http.method": "POST",
        "http.route": "/v1/retell/functions/{name}",
        "http.status_code": 200,
        "correlation_id": call_id,
    }
    trace_id = server.context.trace_id
    sync_job = one([s for s in finished if s.name == "job sync_appointment"], "sync job")
    notify_job = one([s for s in finished if s.name == "job notify"], "notify job")
    for job, row, queue in (
        (sync_job, sync_row, BOOKING_QUEUE),
        (notify_job, notify_row, NOTIFY_QUEUE),
    ):
        assert job.kind == SpanKind.CONSUMER
        assert job.context is not None and job.context.trace_id == trace_id
        attributes = dict(job.attributes or {})
        assert (attributes["correlation_id"], attributes["job.try"]) == (call_id, 1)
        assert (attributes["queue"], attributes["job.id"]) == (queue, f"outbox:{row.id}")
        # The context the job continued was stored with the row, in the request.
        stored = row.payload[TRACE_KEY]
        assert stored["correlation_id"] == call_id
        assert stored["traceparent"].split("-")[1] == f"{trace_id:032x}"

    # Cal.com's create call is a child of the sync job; the SMS gateway's of the notice.
    [create] = [s for s in children(finished, sync_job) if s.name.startswith("HTTP POST")]
    assert create.kind == SpanKind.CLIENT
    assert create.name == "HTTP POST 127.0.0.1"
    create_attributes = dict(create.attributes or {})
    assert create_attributes["http.url"] == f"{fake.url}/v2/bookings"
    assert (create_attributes["http.status_code"], create_attributes["correlation_id"]) == (
        201,
        call_id,
    )
    [sms] = [
        s
        for s in children(finished, notify_job)
        if s.kind == SpanKind.CLIENT and s.name.startswith("HTTP ")
    ]
    assert sms.name == "HTTP POST 127.0.0.1"
    assert dict(sms.attributes or {})["correlation_id"] == call_id

    # SQL under the request and under each job: verb, backend, the statement without values.
    sql = [s for s in finished if s.name.startswith("SQL ")]
    for parent in (server, sync_job, notify_job):
        mine = children(sql, parent)
        assert {"SQL SELECT", "SQL INSERT"} <= {s.name for s in mine}, parent.name
    system = "sqlite" if backend == "sqlite" else "mariadb"
    for statement in sql:
        attributes = dict(statement.attributes or {})
        assert statement.kind == SpanKind.CLIENT
        assert statement.context is not None and statement.context.trace_id == trace_id
        assert attributes["db.system"] == system
        assert "Mustermann" not in str(attributes["db.statement"])
        assert len(str(attributes["db.statement"])) <= 500
    assert {dict(s.attributes or {}).get("correlation_id") for s in children(sql, sync_job)} == {
        call_id
    }

    async with db.transaction(SYSTEM, write=False) as session:
        logged = (
            (
                await session.execute(
                    select(ApiCallLog.correlation_id).where(
                        ApiCallLog.company_id == cal.company_id,
                        ApiCallLog.method == "POST",
                        ApiCallLog.endpoint == "/v2/bookings",
                    )
                )
            )
            .scalars()
            .all()
        )
    assert logged == [call_id]


async def test_without_an_exporter_nothing_is_traced_and_jobs_carry_nothing(
    services: Services, db: Database, pool: ArqRedis, settings: Settings
) -> None:
    assert Settings.model_fields["tracing_exporter"].default == "none"
    reset_tracing()
    configure_tracing("booking", settings)
    assert not enabled()
    salon = await create_salon(db)
    response = await services.clients["booking"].post(
        "/v1/appointments",
        json={
            "service_id": salon.service_id,
            "staff_id": salon.staff_ids[0],
            "start": at(next_weekday(3), 11),
            "customer": {"name": "Erika Musterfrau", "phone": CALLER},
        },
        headers=salon.headers,
    )
    assert response.status_code == 201, response.text
    rows = await outbox_rows(db, response.json()["id"])
    assert sorted(rows) == ["notify", "sync_appointment"]
    for row in rows.values():
        assert TRACE_KEY not in row.payload
        job = Job(f"outbox:{row.id}", pool, _queue_name=row.queue)
        info = await job.info()
        # Enqueued exactly as without tracing: any worker, traced or not, can run it.
        assert info is not None and (info.args, info.kwargs) == ((row.id,), {})
    reset_tracing()


async def test_console_exporter_prints_the_spans(
    services: Services, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    reset_tracing()
    configure_tracing("booking", settings.model_copy(update={"tracing_exporter": "console"}))
    try:
        response = await services.clients["booking"].get("/health/live")
        assert response.status_code == 200
    finally:
        reset_tracing()  # flushes the batch
    printed = capsys.readouterr().out
    assert '"name": "GET /health/live"' in printed
    assert '"service.name": "booking"' in printed
    assert '"http.status_code": 200' in printed


class _Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP traces endpoint that keeps what it is sent."""

    received: list[tuple[str, str, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    _Collector.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", _Collector.received
    server.shutdown()
    server.server_close()


async def test_otlp_exporter_posts_the_spans_to_the_collector(
    services: Services,
    settings: Settings,
    collector: tuple[str, list[tuple[str, str, bytes]]],
) -> None:
    endpoint, received = collector
    reset_tracing()
    otlp = settings.model_copy(update={"tracing_exporter": "otlp", "otlp_endpoint": endpoint})
    configure_tracing("policy", otlp)
    try:
        response = await services.clients["policy"].get(
            "/health/live", headers={"traceparent": CALLER_TRACEPARENT}
        )
        assert response.status_code == 200
    finally:
        reset_tracing()
    assert [(path, kind) for path, kind, _ in received] == [
        ("/v1/traces", "application/x-protobuf")
    ]
    request = ExportTraceServiceRequest()
    request.ParseFromString(received[0][2])
    [resource_spans] = request.resource_spans
    service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert service["service.name"] == "policy"
    [span] = [s for scope in resource_spans.scope_spans for s in scope.spans]
    assert span.name == "GET /health/live"
    assert (span.trace_id.hex(), span.parent_span_id.hex()) == (
        f"{CALLER_TRACE_ID:032x}",
        f"{CALLER_SPAN_ID:016x}",
    )


async def test_a_callers_traceparent_becomes_the_parent(
    services: Services, spans: InMemorySpanExporter
) -> None:
    response = await services.clients["booking"].get(
        "/health/live",
        headers={"traceparent": CALLER_TRACEPARENT, "X-Correlation-ID": "call_parent_1"},
    )
    assert response.status_code == 200
    [server] = spans.get_finished_spans()
    assert server.name == "GET /health/live" and server.kind == SpanKind.SERVER
    assert server.context is not None and server.parent is not None
    assert (server.context.trace_id, server.parent.span_id) == (CALLER_TRACE_ID, CALLER_SPAN_ID)
    assert server.parent.is_remote
    assert dict(server.attributes or {})["correlation_id"] == "call_parent_1"


async def test_the_policy_call_continues_the_bookings_trace(
    services: Services, db: Database, settings: Settings, spans: InMemorySpanExporter
) -> None:
    """Booking -> policy over HTTP: the client span's traceparent is the policy span's parent."""
    salon = await create_salon(db)
    policy = PolicyClient(
        "http://policy.test",
        settings.service_api_key,
        settings.policy_timeout_s,
        transport=httpx.ASGITransport(app=services.apps["policy"]),
    )
    try:
        with pytest.raises(NotFound):
            await policy.evaluate(salon.tenant.company_id, "no-such-appointment", "cancel")
    finally:
        await policy.aclose()
    finished = spans.get_finished_spans()
    client = one(
        [s for s in finished if s.kind == SpanKind.CLIENT and s.name.startswith("HTTP")], "client"
    )
    assert client.name == "HTTP POST policy.test"
    assert dict(client.attributes or {})["http.status_code"] == 404
    server = one([s for s in finished if s.kind == SpanKind.SERVER], "policy server span")
    assert server.name == "POST /v1/policies/evaluate"
    assert client.context is not None and server.parent is not None
    assert (server.parent.trace_id, server.parent.span_id) == (
        client.context.trace_id,
        client.context.span_id,
    )
    assert dict(server.attributes or {})["http.status_code"] == 404


async def test_a_webhook_job_continues_the_ingest_request_trace(
    services: Services,
    db: Database,
    settings: Settings,
    backend: str,
    pool: ArqRedis,
    spans: InMemorySpanExporter,
) -> None:
    """Ingestion enqueues directly (no outbox): the job carries the request's context."""
    salon = await create_salon(db)
    await enable_retell(db, salon)
    call_id = f"call_webhook_trace_{backend}"
    body = load_json("retell", "webhook_call_ended.constructed.json")
    body["call"].update(call_id=call_id, to_number=salon.phone_number)
    raw, headers = signed(body)
    response = await services.clients["webhooks"].post(
        "/v1/webhooks/retell", content=raw, headers=headers
    )
    assert response.status_code == 202, response.text
    jid = job_id(response.json()["event_id"])
    info = await Job(jid, pool, _queue_name=WEBHOOKS_QUEUE).info()
    await pool.zrem(WEBHOOKS_QUEUE, jid)  # run here, not by a later test's burst worker
    await pool.delete(f"arq:job:{jid}")
    assert info is not None and info.function == PROCESS_JOB
    server = one([s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER], "server")
    assert server.name == "POST /v1/webhooks/retell" and server.context is not None
    trace = info.kwargs[TRACE_KEY]
    assert trace["correlation_id"] == call_id
    _version, trace_id, parent_id, _flags = trace["traceparent"].split("-")
    assert (trace_id, parent_id) == (
        f"{server.context.trace_id:032x}",
        f"{server.context.span_id:016x}",
    )

    functions: list[Any] = WebhooksWorker.functions  # type: ignore[attr-defined]
    [process] = [f for f in functions if getattr(f, "__name__", "") == PROCESS_JOB]
    ctx = {"db": db, "settings": settings, "redis": pool, "job_id": jid, "job_try": 2}
    assert await process(ctx, *info.args, **info.kwargs) == "processed"
    job = one([s for s in spans.get_finished_spans() if s.kind == SpanKind.CONSUMER], "job")
    assert job.name == f"job {PROCESS_JOB}"
    assert job.parent is not None and job.parent.span_id == server.context.span_id
    assert dict(job.attributes or {}) == {
        "job.name": PROCESS_JOB,
        "job.id": jid,
        "job.try": 2,
        "queue": WEBHOOKS_QUEUE,
        "correlation_id": call_id,
    }


async def test_a_job_span_tells_a_retry_from_a_failure(spans: InMemorySpanExporter) -> None:
    before = correlation_id_var.get()
    seen: list[str | None] = []

    async def flaky(ctx: dict[str, Any], outcome: str) -> None:
        seen.append(correlation_id_var.get())
        if outcome == "retry":
            raise Retry(defer=2)
        raise ValueError("boom")

    job = traced_job(flaky, "flaky", BOOKING_QUEUE)
    carried = {"correlation_id": "call_job_1"}  # no traceparent: the job starts a trace
    with pytest.raises(Retry):
        await job({"job_try": 3}, "retry", _trace=carried)
    with pytest.raises(ValueError, match="boom"):
        await job({"job_try": 4}, "fail", _trace=carried)

    assert seen == ["call_job_1", "call_job_1"]
    assert correlation_id_var.get() == before
    retried, failed = spans.get_finished_spans()
    assert (retried.parent, failed.parent) == (None, None)
    assert [dict(s.attributes or {})["job.try"] for s in (retried, failed)] == [3, 4]
    assert retried.status.status_code == StatusCode.UNSET
    assert [(e.name, dict(e.attributes or {})) for e in retried.events] == [
        ("retry", {"defer_s": 2.0})
    ]
    assert failed.status.status_code == StatusCode.ERROR
    assert [e.name for e in failed.events] == ["exception"]
