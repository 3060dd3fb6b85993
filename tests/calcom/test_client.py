"""The Cal.com client against the fake Cal.com: values, headers, error classes, the call log,
the metrics, the shared breaker and the retry timing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.integrations.calcom import (
    BOOKINGS_API_VERSION,
    SLOTS_API_VERSION,
    CalcomBooking,
    CalcomClient,
    CalcomError,
    CalcomRejected,
    CalcomTransient,
    CallLog,
    CircuitOpen,
    backoff_delay,
    retry_after_from_headers,
)
from shared.models import Company
from shared.models.integration import ApiCallLog
from shared.observability.logging import correlation_id_var
from shared.redis.circuit_breaker import CircuitBreaker
from shared.security.outbound import outbound_client
from tests.support.factories import create_tenant
from tests.support.fake_calcom import SLOT_TAKEN, FakeCalcom

API_KEY = "cal_live_test_key"
START = (datetime.now(UTC) + timedelta(days=3)).replace(hour=10, minute=0, second=0, microsecond=0)


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeCalcom]:
    async with FakeCalcom(api_keys=[API_KEY]) as running:
        yield running


@pytest.fixture
async def http(fake: FakeCalcom) -> AsyncIterator[httpx.AsyncClient]:
    fake.reset()
    fake.add_event_type(1, 30, "host@example.com")
    fake.add_event_type(2, 30, "host@example.com")
    # The outbound guard's client, as the services use it; the fake listens on 127.0.0.1.
    loopback = Settings(allow_private_outbound_urls=True)
    async with outbound_client(loopback, timeout=httpx.Timeout(10.0)) as client:
        yield client


@pytest.fixture
def client(fake: FakeCalcom, http: httpx.AsyncClient) -> CalcomClient:
    return CalcomClient(base_url=fake.url, api_key=API_KEY, company_id="c-1", http=http)


async def _book(
    client: CalcomClient, start: datetime = START, appointment_id: str = "appt-1", **kw: Any
) -> CalcomBooking:
    return await client.create_booking(
        event_type_id=kw.pop("event_type_id", 1),
        start=start,
        attendee_name="Ann Example",
        attendee_email="ann@example.com",
        attendee_time_zone="Europe/Berlin",
        attendee_phone="+4915112345678",
        metadata={"appointment_id": appointment_id},
        **kw,
    )


# -- values ------------------------------------------------------------------------------


async def test_create_returns_the_booking_and_sends_the_contract_headers(
    fake: FakeCalcom, http: httpx.AsyncClient
) -> None:
    sent: list[httpx.Request] = []

    async def capture(request: httpx.Request) -> None:
        sent.append(request)

    http.event_hooks["request"].append(capture)
    client = CalcomClient(base_url=fake.url + "/", api_key=API_KEY, company_id="c", http=http)

    booking = await _book(client, length_minutes=30)
    await client.get_slots(
        event_type_id=1, start=START.date(), end=START.date(), time_zone="Europe/Berlin"
    )

    assert booking.status == "accepted"
    assert booking.start == START and booking.start.tzinfo is UTC
    assert booking.end == START + timedelta(minutes=30)
    assert booking.event_type_id == 1
    assert booking.host_emails == ("host@example.com",)
    assert booking.attendee_name == "Ann Example"
    assert booking.attendee_email == "ann@example.com"
    assert booking.attendee_phone == "+4915112345678"
    assert booking.attendee_time_zone == "Europe/Berlin"
    assert booking.metadata == {"appointment_id": "appt-1"}
    assert booking.appointment_id == "appt-1"
    assert booking.uid in fake.bookings
    assert [(r.method, r.url.path) for r in sent] == [
        ("POST", "/v2/bookings"),
        ("GET", "/v2/slots"),
    ]
    assert sent[0].headers["cal-api-version"] == BOOKINGS_API_VERSION == "2024-08-13"
    assert sent[1].headers["cal-api-version"] == SLOTS_API_VERSION == "2024-09-04"
    assert all(r.headers["authorization"] == f"Bearer {API_KEY}" for r in sent)
    assert fake.violations == []


async def test_cancel_reschedule_get_and_list(fake: FakeCalcom, client: CalcomClient) -> None:
    booking = await _book(client)

    moved = await client.reschedule_booking(booking.uid, START + timedelta(hours=2), "later")
    old = await client.get_booking(booking.uid)
    cancelled = await client.cancel_booking(moved.uid, "ill")
    cancelled_again = await client.cancel_booking(moved.uid)
    listed = await client.list_bookings(event_type_id=1)

    assert moved.uid != booking.uid
    assert moved.start == START + timedelta(hours=2)
    assert moved.rescheduled_from_uid == booking.uid
    assert old is not None and old.status == "cancelled"
    assert old.rescheduled_to_uid == moved.uid
    assert cancelled is not None and cancelled.status == "cancelled"
    assert cancelled.cancellation_reason == "ill"
    assert cancelled_again == cancelled  # already cancelled: success, nothing changed
    assert [b.uid for b in listed] == [booking.uid, moved.uid]
    assert await client.get_booking("unknown-uid") is None
    assert await client.cancel_booking("unknown-uid") is None
    assert fake.violations == []


async def test_iter_bookings_follows_pagination_and_filters_by_update(
    fake: FakeCalcom, client: CalcomClient
) -> None:
    made = [await _book(client, START + timedelta(hours=h), f"a{h}") for h in range(5)]
    # Cal.com stamps milliseconds and afterUpdatedAt is inclusive: keep the mark clear of both.
    await asyncio.sleep(0.005)
    mark = datetime.now(UTC)
    await asyncio.sleep(0.005)
    await client.cancel_booking(made[3].uid)

    everything = [b.uid async for b in client.iter_bookings(take=2)]
    changed = await client.list_bookings(after_updated_at=mark)
    page = await client.list_bookings(take=2, skip=2)

    assert everything == [b.uid for b in made]
    assert fake.calls["GET /v2/bookings"] == 3 + 2  # three pages, then the two lists
    assert [b.uid for b in changed] == [made[3].uid]
    assert [b.uid for b in page] == [made[2].uid, made[3].uid]
    assert fake.violations == []


async def test_find_by_appointment_adopts_the_booking_after_a_reset(
    fake: FakeCalcom, client: CalcomClient
) -> None:
    await _book(client, START - timedelta(hours=1), "someone-else")
    fake.control(commit_then_reset=True, times=1)

    with pytest.raises(CalcomTransient):
        await _book(client, START, "appt-42")
    found = await client.find_by_appointment("appt-42", event_type_id=1, start=START)
    elsewhere = await client.find_by_appointment("appt-42", event_type_id=2, start=START)

    assert found is not None
    assert found.metadata["appointment_id"] == "appt-42"
    assert found.start == START
    assert elsewhere is None
    assert len(fake.bookings) == 2


async def test_find_by_appointment_prefers_the_live_booking(client: CalcomClient) -> None:
    first = await _book(client, START, "appt-7")
    moved = await client.reschedule_booking(first.uid, START + timedelta(hours=3))

    found = await client.find_by_appointment("appt-7", event_type_id=1, start=START)

    assert found is not None and found.uid == moved.uid


async def test_get_slots_returns_utc_starts(fake: FakeCalcom, client: CalcomClient) -> None:
    fake.add_event_type(
        9, 60, "nine@example.com", time_zone="Europe/Berlin", hours=(dtime(9), dtime(12))
    )
    day = START.date() + timedelta(days=10)
    berlin = ZoneInfo("Europe/Berlin")
    taken = await client.create_booking(
        event_type_id=9,
        start=datetime.combine(day, dtime(10), berlin).astimezone(UTC),
        attendee_name="B",
        attendee_email="b@example.com",
        attendee_time_zone="UTC",
        attendee_phone=None,
        metadata={},
    )

    # The New York day holds the whole Berlin window (03:00-06:00 New York time).
    slots = await client.get_slots(
        event_type_id=9, start=day, end=day, time_zone="America/New_York"
    )

    assert all(s.tzinfo is UTC for s in slots)
    assert [s.astimezone(berlin) for s in slots] == [
        datetime.combine(day, dtime(9), berlin),
        datetime.combine(day, dtime(11), berlin),
    ]
    assert taken.start not in slots
    assert fake.violations == []


async def test_get_slots_for_a_reschedule_sends_the_booking_uid(
    fake: FakeCalcom, client: CalcomClient
) -> None:
    fake.add_event_type(10, 60, "ten@example.com", hours=(dtime(9), dtime(12)))
    day = START.date() + timedelta(days=11)
    moved = await _book(client, datetime.combine(day, dtime(10), UTC), event_type_id=10)

    plain = await client.get_slots(event_type_id=10, start=day, end=day, time_zone="UTC")
    moving = await client.get_slots(
        event_type_id=10, start=day, end=day, time_zone="UTC", booking_uid_to_reschedule=moved.uid
    )

    assert [s.hour for s in plain] == [9, 11]
    assert [s.hour for s in moving] == [9, 10, 11]
    assert [q.get("bookingUidToReschedule") for q in fake.slot_queries] == [None, moved.uid]
    assert fake.violations == []


# -- failures ----------------------------------------------------------------------------


async def test_429_is_transient_with_the_reset_header(
    fake: FakeCalcom, client: CalcomClient
) -> None:
    fake.control(status_override=429, times=1, rate_limit_reset_s=9)

    with pytest.raises(CalcomTransient) as caught:
        await _book(client)

    assert caught.value.status == 429
    assert caught.value.retry_after_s == 9.0
    assert fake.bookings == {}


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_is_transient(fake: FakeCalcom, client: CalcomClient, status: int) -> None:
    fake.control(status_override=status, times=1)

    with pytest.raises(CalcomTransient) as caught:
        await client.get_booking("x")

    assert caught.value.status == status
    assert caught.value.retry_after_s is None


async def test_down_and_timeout_are_transient(fake: FakeCalcom, http: httpx.AsyncClient) -> None:
    client = CalcomClient(
        base_url=fake.url, api_key=API_KEY, company_id="c", http=http, timeout_s=0.3
    )
    fake.control(down=True, times=1)
    with pytest.raises(CalcomTransient) as down:
        await _book(client)
    fake.control(slow_s=0.8, times=1)
    with pytest.raises(CalcomTransient) as slow:
        await client.get_slots(
            event_type_id=1, start=START.date(), end=START.date(), time_zone="UTC"
        )
    nobody = CalcomClient(base_url="http://127.0.0.1:9", api_key=API_KEY, company_id="c", http=http)
    with pytest.raises(CalcomTransient) as refused:
        await nobody.get_booking("x")

    assert down.value.status is None and isinstance(down.value.__cause__, httpx.TransportError)
    assert "timed out" in slow.value.message
    assert isinstance(refused.value.__cause__, httpx.ConnectError)
    assert fake.bookings == {}


async def test_slots_timeout_can_be_shorter_per_call(
    fake: FakeCalcom, client: CalcomClient
) -> None:
    fake.control(slow_s=0.5, times=1)

    with pytest.raises(CalcomTransient):
        await client.get_slots(
            event_type_id=1, start=START.date(), end=START.date(), time_zone="UTC", timeout_s=0.1
        )


async def test_taken_slot_is_rejected_as_unavailable(client: CalcomClient) -> None:
    await _book(client)

    with pytest.raises(CalcomRejected) as caught:
        await _book(client, START + timedelta(minutes=15), "appt-2", event_type_id=2)

    assert caught.value.status == 400
    assert caught.value.slot_unavailable is True
    assert caught.value.remote_detail == SLOT_TAKEN
    assert caught.value.message == "Cal.com answered 400 (Bad Request)"  # never Cal.com's text
    assert caught.value.body is not None and caught.value.body["status"] == "error"


async def test_other_4xx_are_rejected_not_unavailable(
    fake: FakeCalcom, http: httpx.AsyncClient
) -> None:
    wrong_key = CalcomClient(base_url=fake.url, api_key="cal_wrong", company_id="c", http=http)
    client = CalcomClient(base_url=fake.url, api_key=API_KEY, company_id="c", http=http)

    with pytest.raises(CalcomRejected) as unauthorized:
        await wrong_key.list_bookings()
    with pytest.raises(CalcomRejected) as unknown_type:
        await _book(client, event_type_id=404)
    with pytest.raises(CalcomRejected) as moved_missing:
        await client.reschedule_booking("missing", START)

    assert unauthorized.value.status == 401
    assert unauthorized.value.slot_unavailable is False
    assert unknown_type.value.status == 404
    assert unknown_type.value.slot_unavailable is False
    assert moved_missing.value.status == 404


async def test_unexpected_2xx_shapes_are_calcom_errors() -> None:
    answers = iter(
        [
            httpx.Response(200, json={"status": "success", "data": {"uid": "u"}}),
            httpx.Response(200, json={"status": "success", "data": "nope"}),
            httpx.Response(200, text="<html>ok</html>"),
            httpx.Response(201, json={"status": "success", "data": [1, 2]}),
            httpx.Response(200, json={"status": "success", "data": {"2030-01-01": [{"start": 5}]}}),
        ]
    )
    transport = httpx.MockTransport(lambda _request: next(answers))
    async with httpx.AsyncClient(transport=transport) as http:
        client = CalcomClient(base_url="http://cal.test", api_key="k", company_id="c", http=http)
        for call in (
            client.get_booking("u"),
            client.list_bookings(),
            client.get_booking("u"),
            _book(client),
            client.get_slots(
                event_type_id=1, start=START.date(), end=START.date(), time_zone="UTC"
            ),
        ):
            with pytest.raises(CalcomError) as caught:
                await call
            assert type(caught.value) is CalcomError


def test_booking_from_api_refuses_malformed_data() -> None:
    good = {
        "uid": "u1",
        "id": 5.0,
        "status": "ACCEPTED",
        "start": "2030-01-01T10:00:00.000Z",
        "end": "2030-01-01T10:30:00+01:00",
        "eventType": {"id": 3, "slug": "x"},
        "attendees": [{"name": "A", "email": "a@b.c", "timeZone": "UTC", "absent": False}],
        "metadata": {"appointment_id": "a", "n": 1},
        "updatedAt": "2030-01-01T09:00:00Z",
    }
    booking = CalcomBooking.from_api(good)
    assert (booking.id, booking.status, booking.event_type_id) == (5, "accepted", 3)
    assert booking.end == datetime(2030, 1, 1, 9, 30, tzinfo=UTC)
    assert booking.metadata == {"appointment_id": "a", "n": "1"}
    assert booking.host_emails == () and booking.attendee_phone is None
    for broken in (
        {**good, "uid": None},
        {**good, "status": 3},
        {**good, "start": "2030-01-01T10:00:00"},  # naive
        {**good, "end": "tomorrow"},
        {**good, "updatedAt": 17},
    ):
        with pytest.raises(CalcomError):
            CalcomBooking.from_api(broken)


# -- call log and metrics ----------------------------------------------------------------


async def _logs(db: Database, company_id: str) -> list[ApiCallLog]:
    async with db.transaction(SYSTEM, write=False) as session:
        rows = await session.scalars(
            sa.select(ApiCallLog)
            .where(ApiCallLog.company_id == company_id)
            .order_by(ApiCallLog.created_at)
        )
        return list(rows)


async def test_every_call_is_logged_redacted_with_the_correlation_id(
    fake: FakeCalcom, http: httpx.AsyncClient, db: Database
) -> None:
    tenant = await create_tenant(db)
    client = CalcomClient(
        base_url=fake.url,
        api_key=API_KEY,
        company_id=tenant.company_id,
        http=http,
        call_log=CallLog(db),
        timeout_s=0.3,
    )
    token = correlation_id_var.set("corr-calcom-1")
    try:
        booking = await _book(client)
        fake.control(status_override=500, times=1)
        with pytest.raises(CalcomTransient):
            await client.cancel_booking(booking.uid, "Ann is ill")
        fake.control(slow_s=0.6, times=1)
        with pytest.raises(CalcomTransient):
            await client.get_booking(booking.uid)
    finally:
        correlation_id_var.reset(token)

    created, failed, timed_out = await _logs(db, tenant.company_id)

    assert (created.service, created.method, created.endpoint) == ("calcom", "POST", "/v2/bookings")
    assert created.response_status == 201
    assert created.correlation_id == "corr-calcom-1"
    assert created.error_message is None
    assert created.duration_ms is not None and 0 <= created.duration_ms < 5000
    attendee = created.request_payload["attendee"]  # type: ignore[index]
    assert attendee == {
        "name": "***",
        "email": "***",
        "timeZone": "Europe/Berlin",
        "phoneNumber": "***",
    }
    assert created.request_payload["metadata"] == {"appointment_id": "appt-1"}  # type: ignore[index]
    answered = created.response_body["data"]  # type: ignore[index]
    assert answered["uid"] == booking.uid
    assert answered["attendees"][0]["name"] == "***"
    assert answered["attendees"][0]["email"] == "***"
    assert answered["attendees"][0]["phoneNumber"] == "***"
    assert "Ann" not in str(created.response_body) and "4915112345678" not in str(
        created.response_body
    )

    assert failed.endpoint == f"/v2/bookings/{booking.uid}/cancel"
    assert failed.response_status == 500
    assert failed.request_payload == {"cancellationReason": "***"}  # free text: redacted
    assert failed.error_message == "Cal.com answered 500 (Internal Server Error)"
    assert timed_out.response_status is None
    assert timed_out.duration_ms is not None and timed_out.duration_ms >= 250
    assert timed_out.error_message is not None and timed_out.error_message.startswith("timeout")
    assert {r.correlation_id for r in (created, failed, timed_out)} == {"corr-calcom-1"}


async def test_call_log_survives_the_callers_rollback(
    fake: FakeCalcom, http: httpx.AsyncClient, db: Database
) -> None:
    tenant = await create_tenant(db)
    client = CalcomClient(
        base_url=fake.url,
        api_key=API_KEY,
        company_id=tenant.company_id,
        http=http,
        call_log=CallLog(db),
    )

    with pytest.raises(RuntimeError):
        async with db.transaction(tenant.company_id, write=False):
            await client.get_booking("nope")
            raise RuntimeError("the job failed after calling Cal.com")

    [row] = await _logs(db, tenant.company_id)
    assert (row.method, row.endpoint, row.response_status) == ("GET", "/v2/bookings/nope", 404)


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_metrics_count_by_templated_endpoint(fake: FakeCalcom, client: CalcomClient) -> None:
    create_201 = _sample("calcom_requests_total", endpoint="/v2/bookings", status="201")
    cancel_200 = _sample(
        "calcom_requests_total", endpoint="/v2/bookings/{uid}/cancel", status="200"
    )
    get_404 = _sample("calcom_requests_total", endpoint="/v2/bookings/{uid}", status="404")
    timed = _sample("calcom_request_duration_seconds_count", endpoint="/v2/bookings/{uid}/cancel")

    booking = await _book(client)
    await client.cancel_booking(booking.uid)
    await client.get_booking("nope")

    assert _sample("calcom_requests_total", endpoint="/v2/bookings", status="201") == create_201 + 1
    assert (
        _sample("calcom_requests_total", endpoint="/v2/bookings/{uid}/cancel", status="200")
        == cancel_200 + 1
    )
    assert (
        _sample("calcom_requests_total", endpoint="/v2/bookings/{uid}", status="404") == get_404 + 1
    )
    assert (
        _sample("calcom_request_duration_seconds_count", endpoint="/v2/bookings/{uid}/cancel")
        == timed + 1
    )
    endpoints = {
        s.labels["endpoint"]
        for metric in REGISTRY.collect()
        if metric.name == "calcom_requests"
        for s in metric.samples
    }
    assert not any(booking.uid in e for e in endpoints)


# -- breaker -----------------------------------------------------------------------------


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_breaker_opens_on_transient_failures_only(
    fake: FakeCalcom, http: httpx.AsyncClient, redis: Redis
) -> None:
    breaker = CircuitBreaker(redis, f"calcom:test:{uuid.uuid4().hex}", failure_threshold=3)
    client = CalcomClient(
        base_url=fake.url, api_key=API_KEY, company_id="c", http=http, breaker=breaker
    )
    opened_before = _sample(
        "calcom_requests_total", endpoint="/v2/bookings/{uid}", status="circuit_open"
    )

    for _ in range(5):  # 4xx answers are Cal.com working: they never open the breaker
        assert await client.get_booking("nope") is None
    assert await breaker.state() == "closed"
    # Only these requests: a request of an earlier test still in flight must not take a 503.
    fake.control(status_override=503, times=3, match="GET /v2/bookings/{uid}")
    for _ in range(3):
        with pytest.raises(CalcomTransient):
            await client.get_booking("nope")
    calls_when_opened = fake.calls["GET /v2/bookings/{uid}"]
    with pytest.raises(CircuitOpen):
        await client.get_booking("nope")

    assert await breaker.state() == "open"
    assert fake.calls["GET /v2/bookings/{uid}"] == calls_when_opened == 8
    assert (
        _sample("calcom_requests_total", endpoint="/v2/bookings/{uid}", status="circuit_open")
        == opened_before + 1
    )


async def test_for_company_builds_the_configured_client(
    fake: FakeCalcom, http: httpx.AsyncClient, redis: Redis, db: Database
) -> None:
    settings = Settings(calcom_base_url=fake.url, allow_private_outbound_urls=True)
    company = Company(id="co-1", name="X", calcom_api_key=API_KEY)
    client = CalcomClient.for_company(company, settings=settings, http=http, redis=redis, db=db)
    own = CalcomClient.for_company(
        Company(id="co-2", name="Y", calcom_api_key="k", calcom_base_url="https://cal.example/"),
        settings=settings,
        http=http,
        redis=None,
        db=None,
    )

    assert client.base_url == fake.url and client.api_key == API_KEY
    assert client.breaker is not None and client.breaker.name == "calcom:co-1"
    assert client.call_log is not None
    assert own.base_url == "https://cal.example" and own.breaker is None and own.call_log is None
    for unconfigured in (
        Company(id="co-3", name="Z", calcom_api_key=None),
        Company(id="co-4", name="W", calcom_api_key="k"),
    ):
        with pytest.raises(CalcomRejected):
            CalcomClient.for_company(
                unconfigured,
                settings=Settings(calcom_base_url=None),
                http=http,
                redis=None,
                db=None,
            )


# -- retry timing ------------------------------------------------------------------------


def test_backoff_delay_is_bounded_full_jitter() -> None:
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (40, 300.0)):
        delays = [backoff_delay(attempt) for _ in range(300)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # full jitter spreads over the whole range
        assert min(delays) < ceiling * 0.2
    assert all(backoff_delay(1, base_s=0.5, cap_s=0.2) <= 0.2 for _ in range(100))
    assert all(backoff_delay(1, retry_after_s=7.0) == 7.0 for _ in range(100))
    assert all(5.0 <= backoff_delay(4, retry_after_s=5.0) <= 8.0 for _ in range(100))
    assert backoff_delay(10_000) <= 300.0


def test_retry_after_from_rate_limit_headers() -> None:
    now = 1_700_000_000.0
    assert retry_after_from_headers({"X-RateLimit-Reset-Default": "12"}, now_s=now) == 12.0
    assert retry_after_from_headers({"x-ratelimit-reset-default": str(now + 30)}, now_s=now) == 30.0
    assert (
        retry_after_from_headers({"X-RateLimit-Reset-Default": str((now + 4) * 1000)}, now_s=now)
        == 4.0
    )
    headers = {
        "X-RateLimit-Remaining-Short": "3",
        "X-RateLimit-Reset-Short": "50",
        "X-RateLimit-Remaining-Default": "0",
        "X-RateLimit-Reset-Default": "6",
    }
    assert retry_after_from_headers(headers, now_s=now) == 6.0  # the exhausted window
    assert retry_after_from_headers({"Retry-After": "3"}, now_s=now) is None
    assert retry_after_from_headers({"X-RateLimit-Reset-Default": "soon"}, now_s=now) is None
