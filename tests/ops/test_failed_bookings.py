"""The failed-booking view and the overview (`/v1/ops/...`), on SQLite and MariaDB.

Failures are produced for real: a database trigger refuses the appointment INSERT in the middle
of the booking transaction (API and agent path), and the fake Cal.com refuses the sync.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa
from arq.connections import ArqRedis
from sqlalchemy import event

from services.booking.appointments.policy_client import PolicyUnavailable
from services.booking.jobs import sync_appointment
from services.booking.ops.failures import Failure, failure_of
from services.booking.ops.overview import local_day_bounds
from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.db.types import utcnow
from shared.errors import AgentAnswer, Conflict, InvalidInput, SlotTaken
from shared.models import (
    ApiCallLog,
    Appointment,
    AppointmentModification,
    BookingFailure,
    CallbackRequest,
    Company,
    NotificationDelivery,
    OutboxEvent,
    Service,
    WebhookEvent,
)
from shared.redis.circuit_breaker import CircuitBreaker
from shared.security.api_keys import issue_key
from tests.booking.agent_support import call_function, enable_retell, signed
from tests.conftest import Services
from tests.ops.conftest import CALCOM_KEY
from tests.support.factories import Salon, create_salon, next_weekday
from tests.support.fake_calcom import FakeCalcom
from tests.webhooks import load_json

BERLIN = ZoneInfo("Europe/Berlin")
FORCED = "forced failure for the ops test"
CALL_ENDED = load_json("retell", "webhook_call_ended.constructed.json")
_event_type_ids = iter(range(8101, 9000))


def at(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=BERLIN)


def body(
    salon: Salon, start: datetime, notes: str | None = None, phone: str = "+491701234567"
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "service_id": salon.service_id,
        "staff_id": salon.staff_ids[0],
        "start": start.isoformat(),
        "customer": {"name": "Max Mustermann", "phone": phone},
    }
    if notes is not None:
        payload["notes"] = notes
    return payload


async def operator(db: Database, company_id: str, scopes: list[str] | None = None) -> dict:
    """Headers with a new key of the company (operator scope unless told otherwise)."""
    async with db.transaction(SYSTEM) as session:
        issued = issue_key(
            session, company_id=company_id, name="ops", scopes=scopes or ["operator"]
        )
    return {"Authorization": f"Bearer {issued.plaintext}"}


async def failed(client: httpx.AsyncClient, headers: dict, **params: Any) -> list[dict]:
    response = await client.get("/v1/ops/failed-bookings", params=params, headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict] = response.json()["items"]
    return items


def steps(item: dict) -> list[tuple[str, str, str | None]]:
    """The timeline as (source, summary, status), after checking it is in time order."""
    instants = [datetime.fromisoformat(entry["at"]) for entry in item["timeline"]]
    assert instants == sorted(instants), item["timeline"]
    return [(e["source"], e["summary"], e["status"]) for e in item["timeline"]]


async def book(client: httpx.AsyncClient, salon: Salon, start: datetime, **kw: Any) -> str:
    response = await client.post(
        "/v1/appointments", json=body(salon, start, **kw), headers=salon.headers
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


# -- what counts as a failure (pure) ------------------------------------------------------------


def test_refusals_are_not_failures_and_errors_are() -> None:
    assert failure_of(SlotTaken("taken")) is None
    assert failure_of(InvalidInput("bad", field="start")) is None
    assert failure_of(Conflict("raced")) is None
    refusal = AgentAnswer(200, {"status": "slot_taken"})
    refusal.__cause__ = SlotTaken("taken")
    assert failure_of(refusal) is None
    assert failure_of(AgentAnswer(200, {"status": "booked"})) is None  # an idempotent replay
    spoken = AgentAnswer(200, {"status": "needs_callback"})
    spoken.__cause__ = PolicyUnavailable("The policy service did not answer in time.")
    assert failure_of(spoken) == Failure(
        "policy_unavailable", "The policy service did not answer in time.", 503
    )
    database = sa.exc.OperationalError(
        "INSERT INTO customers VALUES (?)", ("+491701234567",), OSError("gone")
    )
    assert failure_of(database) == Failure("database_error", "OperationalError: gone", 500)
    assert failure_of(KeyError("x")) == Failure("internal_error", "KeyError: 'x'", 500)
    # Personal data in a message is masked before it is stored.
    leaky = failure_of(RuntimeError("no customer +491701234567 / max@example.com"))
    assert leaky == Failure(
        "internal_error", "RuntimeError: no customer +**********67 / m***@example.com", 500
    )


# -- booking errors ------------------------------------------------------------------------------


async def test_api_booking_that_fails_in_the_database_is_listed(
    booking: httpx.AsyncClient, db: Database, failing_marker: str
) -> None:
    salon = await create_salon(db)
    ops = await operator(db, salon.tenant.company_id)
    start = at(next_weekday(1), 10)
    correlation_id = f"ops-api-{uuid.uuid4().hex[:8]}"

    response = await booking.post(
        "/v1/appointments",
        json=body(salon, start, notes=failing_marker),
        headers={**salon.headers, "X-Correlation-ID": correlation_id},
    )

    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    listed = await booking.get("/v1/appointments", headers=salon.headers)
    assert listed.json()["items"] == []  # rolled back
    [item] = await failed(booking, ops)
    assert {
        k: v for k, v in item.items() if k not in ("id", "occurred_at", "timeline", "error")
    } == {
        "kind": "booking_error",
        "correlation_id": correlation_id,
        "call_id": None,
        "error_code": "database_error",
        "appointment_id": None,
        "source": "api",
        "http_status": 500,
        "service_id": salon.service_id,
        "staff_id": salon.staff_ids[0],
        "start": start.isoformat(),
        "timeline_truncated": False,
    }
    assert FORCED in item["error"]
    assert steps(item) == [("failure", "Booking failed: database_error", "error")]
    assert item["timeline"][0]["details"] == {"error": item["error"], "http_status": 500}
    occurred = datetime.fromisoformat(item["occurred_at"])
    assert occurred.utcoffset() == start.utcoffset()  # the company's local offset
    assert abs(occurred - utcnow()) < timedelta(minutes=1)


async def test_refusals_are_not_recorded(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    await enable_retell(db, salon)
    ops = await operator(db, salon.tenant.company_id)
    start = at(next_weekday(1), 11)
    await book(booking, salon, start)
    taken = await booking.post(
        "/v1/appointments", json=body(salon, start, phone="+491709999999"), headers=salon.headers
    )
    invalid = await booking.post(
        "/v1/appointments", json=body(salon, at(next_weekday(6), 11)), headers=salon.headers
    )  # a Sunday: closed
    spoken = await call_function(
        booking,
        salon,
        "book_appointment",
        {
            "service": "Herrenhaarschnitt",
            "date": "2020-01-06",
            "time": "10:00",
            "customer_name": "Max",
        },
    )
    assert (taken.status_code, invalid.status_code) == (409, 422)
    assert spoken.json()["status"] == "invalid_request"
    assert await failed(booking, ops) == []


async def test_agent_booking_that_fails_has_the_call_and_its_webhook(
    services: Services, booking: httpx.AsyncClient, db: Database, failing_marker: str
) -> None:
    salon = await create_salon(db)
    await enable_retell(db, salon)
    ops = await operator(db, salon.tenant.company_id)
    call_id = f"call_{uuid.uuid4().hex}"
    day = next_weekday(2)

    answer = await call_function(
        booking,
        salon,
        "book_appointment",
        {
            "service": "Herrenhaarschnitt",
            "date": day.isoformat(),
            "time": "10:00",
            "customer_name": "Erika Musterfrau",
            "notes": failing_marker,
        },
        call_id=call_id,
    )
    assert answer.status_code == 500
    # Retell then reports the end of the same call to the webhooks service.
    ended = dict(
        CALL_ENDED, call={**CALL_ENDED["call"], "call_id": call_id, "to_number": salon.phone_number}
    )
    raw, headers = signed(ended)
    stored = await services.clients["webhooks"].post(
        "/v1/webhooks/retell", content=raw, headers=headers
    )
    assert stored.status_code == 202, stored.text
    # Another call of the same company that booked fine is no failure.
    fine = await call_function(
        booking,
        salon,
        "book_appointment",
        {
            "service": "Herrenhaarschnitt",
            "date": day.isoformat(),
            "time": "11:00",
            "customer_name": "Erika Musterfrau",
        },
    )
    assert fine.json()["status"] == "booked", fine.text

    [item] = await failed(booking, ops)
    assert (item["kind"], item["source"], item["correlation_id"], item["call_id"]) == (
        "booking_error",
        "agent",
        call_id,
        call_id,
    )
    assert (item["error_code"], item["http_status"], item["appointment_id"]) == (
        "database_error",
        500,
        None,
    )
    assert FORCED in item["error"]
    assert steps(item) == [
        ("failure", "Booking failed: database_error", "error"),
        ("webhook", "retell call_ended", "pending"),
    ]


# -- sync failures -------------------------------------------------------------------------------


async def connect_calcom(db: Database, salon: Salon, fake: FakeCalcom) -> int:
    event_type_id = next(_event_type_ids)
    fake.add_event_type(event_type_id, 30, f"host-{event_type_id}@example.com")
    async with db.transaction(SYSTEM) as session:
        await session.execute(
            sa.update(Company)
            .where(Company.id == salon.tenant.company_id)
            .values(calcom_api_key=CALCOM_KEY, calcom_base_url=fake.url)
        )
        await session.execute(
            sa.update(Service)
            .where(Service.id == salon.service_id)
            .values(calcom_event_type_id=event_type_id)
        )
    return event_type_id


async def outbox_of(db: Database, appointment_id: str) -> list[OutboxEvent]:
    async with db.transaction(SYSTEM, write=False) as session:
        rows = await session.scalars(
            sa.select(OutboxEvent)
            .where(OutboxEvent.aggregate_id == appointment_id)
            .order_by(OutboxEvent.created_at, OutboxEvent.id)
        )
        return list(rows)


async def test_sync_refused_by_calcom_is_listed_with_its_timeline(
    booking: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    pool: ArqRedis,
    fake: FakeCalcom,
) -> None:
    salon = await create_salon(db, buffer_after=0)
    await connect_calcom(db, salon, fake)
    ops = await operator(db, salon.tenant.company_id)
    correlation_id = f"ops-sync-{uuid.uuid4().hex[:8]}"
    response = await booking.post(
        "/v1/appointments",
        json=body(salon, at(next_weekday(3), 9, 30)),
        headers={**salon.headers, "X-Correlation-ID": correlation_id},
    )
    assert response.status_code == 201, response.text
    appointment_id = response.json()["id"]
    [sync_row, _notify] = await outbox_of(db, appointment_id)
    fake.control(status_override=400, match="POST /v2/bookings")

    outcome = await sync_appointment(
        {"db": db, "settings": settings, "redis": pool, "job_try": 1}, sync_row.id
    )

    assert outcome == "failed"
    [item] = await failed(booking, ops)
    assert (item["kind"], item["appointment_id"], item["correlation_id"], item["source"]) == (
        "sync_failed",
        appointment_id,
        correlation_id,
        "api",
    )
    assert item["error"] == (
        "SyncRefused: Cal.com refused the booking: Cal.com answered 400 (Bad Request)"
    )
    assert steps(item) == [
        ("calcom", "GET /v2/slots -> 200", "ok"),
        ("booking", "Appointment booked (api)", "confirmed"),
        ("outbox", "sync_appointment (booking_confirmed)", "failed"),
        ("outbox", "notify (booking_confirmed)", "pending"),
        ("calcom", "POST /v2/bookings -> 400", "error"),
        ("failure", "Cal.com sync given up", "error"),
        ("outbox", "notify (booking_sync_failed)", "pending"),
    ]


async def test_timeline_merges_every_source_by_booking_uid_and_appointment(
    booking: httpx.AsyncClient, db: Database
) -> None:
    """A synced appointment whose cancellation Cal.com refused: the rows are written directly
    with known times, so the merged order is known to the second."""
    salon = await create_salon(db)
    company_id = salon.tenant.company_id
    ops = await operator(db, company_id)
    appointment_id = await book(booking, salon, at(next_weekday(4), 14))
    uid = f"uid-{uuid.uuid4().hex[:10]}"
    t0 = utcnow().replace(microsecond=0) - timedelta(minutes=30)

    def t(seconds: int) -> datetime:
        return t0 + timedelta(seconds=seconds)

    async with db.transaction(company_id) as session:
        appointment = await session.get(Appointment, appointment_id)
        assert appointment is not None
        await session.execute(
            sa.update(OutboxEvent)
            .where(OutboxEvent.aggregate_id == appointment_id)
            .values(created_at=sa.case((OutboxEvent.job_name == "notify", t(2)), else_=t(1)))
        )
        session.add_all(
            [
                AppointmentModification(
                    appointment_id=appointment_id,
                    customer_id=appointment.customer_id,
                    modification_type="cancel",
                    actor="agent",
                    old_starts_at=appointment.starts_at,
                    created_at=t(60),
                ),
                ApiCallLog(
                    company_id=company_id,
                    correlation_id="cid-of-the-cancel",
                    service="calcom",
                    method="POST",
                    endpoint=f"/v2/bookings/{uid}/cancel",
                    response_status=400,
                    duration_ms=41,
                    error_message="already cancelled",
                    created_at=t(120),
                ),
                ApiCallLog(  # another booking's call
                    company_id=company_id,
                    correlation_id="someone-else",
                    service="calcom",
                    method="POST",
                    endpoint="/v2/bookings/uid-other/cancel",
                    response_status=200,
                    created_at=t(121),
                ),
                WebhookEvent(
                    company_id=company_id,
                    source="calcom",
                    event_id=f"c-{uid}",
                    event_type="BOOKING_CANCELLED",
                    status="processed",
                    payload={"triggerEvent": "BOOKING_CANCELLED", "payload": {"uid": uid}},
                    created_at=t(180),
                ),
                WebhookEvent(
                    company_id=company_id,
                    source="calcom",
                    event_id=f"m-{uid}",
                    event_type="MEETING_ENDED",
                    status="ignored",
                    payload={"uid": uid},
                    created_at=t(190),
                ),
                WebhookEvent(
                    company_id=company_id,
                    source="calcom",
                    event_id=f"r-{uid}",
                    event_type="BOOKING_REQUESTED",
                    status="failed",
                    payload={
                        "payload": {"uid": "x", "metadata": {"appointment_id": appointment_id}}
                    },
                    created_at=t(200),
                ),
                WebhookEvent(  # another booking's event
                    company_id=company_id,
                    source="calcom",
                    event_id=f"o-{uid}",
                    event_type="BOOKING_CREATED",
                    status="processed",
                    payload={"payload": {"uid": "uid-other"}},
                    created_at=t(201),
                ),
                NotificationDelivery(
                    event_id=f"evt-{uid}",
                    event_type="booking_cancelled",
                    channel="sms",
                    recipient_key="k" * 64,
                    recipient_masked="+49*********67",
                    recipient_kind="customer",
                    language="de",
                    appointment_id=appointment_id,
                    status="sent",
                    attempts=1,
                    created_at=t(240),
                ),
            ]
        )
        await session.flush()
        await session.execute(
            sa.update(Appointment)
            .where(Appointment.id == appointment_id)
            .values(
                created_at=t0,
                updated_at=t(300),
                sync_status="failed",
                sync_error="CalcomRejected: already cancelled",
                calcom_booking_uid=uid,
            )
            .execution_options(synchronize_session=False)
        )

    [item] = await failed(booking, ops)
    assert (item["kind"], item["appointment_id"], item["error"]) == (
        "sync_failed",
        appointment_id,
        "CalcomRejected: already cancelled",
    )
    assert datetime.fromisoformat(item["occurred_at"]) == t(300)
    assert steps(item) == [
        ("booking", "Appointment booked (api)", "confirmed"),
        ("outbox", "sync_appointment (booking_confirmed)", "pending"),
        ("outbox", "notify (booking_confirmed)", "pending"),
        ("modification", "cancel by agent", "within_policy"),
        ("calcom", f"POST /v2/bookings/{uid}/cancel -> 400", "error"),
        ("webhook", "calcom BOOKING_CANCELLED", "processed"),
        ("webhook", "calcom MEETING_ENDED", "ignored"),
        ("webhook", "calcom BOOKING_REQUESTED", "failed"),
        ("notification", "booking_cancelled via sms to +49*********67", "sent"),
        ("failure", "Cal.com sync given up", "error"),
    ]
    assert [datetime.fromisoformat(e["at"]) for e in item["timeline"]] == [
        t0,
        t(1),
        t(2),
        t(60),
        t(120),
        t(180),
        t(190),
        t(200),
        t(240),
        t(300),
    ]
    assert item["timeline"][4]["details"] == {
        "response_status": 400,
        "duration_ms": 41,
        "error": "already cancelled",
    }


# -- window, isolation, access -------------------------------------------------------------------


async def add_failure(db: Database, company_id: str, created_at: datetime, code: str) -> None:
    async with db.transaction(company_id) as session:
        session.add(
            BookingFailure(
                source="api",
                error_code=code,
                error_message=f"{code} for the test",
                http_status=503,
                correlation_id=f"cid-{code}",
                created_at=created_at,
            )
        )


async def test_hours_window_and_its_bounds(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    company_id = salon.tenant.company_id
    ops = await operator(db, company_id)
    now = utcnow()
    await add_failure(db, company_id, now - timedelta(minutes=30), "recent")
    await add_failure(db, company_id, now - timedelta(hours=2), "two_hours")
    await add_failure(db, company_id, now - timedelta(hours=30), "yesterday")
    await add_failure(db, company_id, now - timedelta(hours=169), "too_old")

    def codes(items: list[dict]) -> list[str]:
        return [i["error_code"] for i in items]

    assert codes(await failed(booking, ops, hours=1)) == ["recent"]
    assert codes(await failed(booking, ops, hours=3)) == ["recent", "two_hours"]
    assert codes(await failed(booking, ops)) == ["recent", "two_hours"]  # 24 by default
    assert codes(await failed(booking, ops, hours=168)) == ["recent", "two_hours", "yesterday"]
    for hours in ("0", "169", "-1", "1.5", "abc"):
        response = await booking.get(
            "/v1/ops/failed-bookings", params={"hours": hours}, headers=ops
        )
        assert response.status_code == 422, hours
        assert response.json()["code"] == "validation_error"


async def test_a_company_sees_only_its_own_failures(
    booking: httpx.AsyncClient, db: Database
) -> None:
    first, second = await create_salon(db), await create_salon(db)
    await add_failure(db, first.tenant.company_id, utcnow(), "first_only")
    appointment_id = await book(booking, first, at(next_weekday(1), 9))
    async with db.transaction(first.tenant.company_id) as session:
        await session.execute(
            sa.update(Appointment)
            .where(Appointment.id == appointment_id)
            .values(sync_status="failed", sync_error="refused")
        )

    mine = await failed(booking, await operator(db, first.tenant.company_id))
    theirs = await failed(booking, await operator(db, second.tenant.company_id))

    assert sorted(i["kind"] for i in mine) == ["booking_error", "sync_failed"]
    assert theirs == []
    view = await booking.get(
        "/v1/ops/overview", headers=await operator(db, second.tenant.company_id)
    )
    assert view.json()["bookings_today"] == {
        "booked": 0,
        "failed": 0,
        "success_rate": None,
        "sync_failed": 0,
        "day_start": view.json()["bookings_today"]["day_start"],
        "attempts": 0,
        "fully_succeeded": 0,
        "not_in_calcom": 0,
        "calcom_waiting": 0,
        "confirmations_failed": 0,
    }


async def test_ops_endpoints_need_an_operator_key(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    service_only = await operator(db, salon.tenant.company_id, scopes=["service"])
    for path in ("/v1/ops/failed-bookings", "/v1/ops/overview"):
        assert (await booking.get(path)).status_code == 401
        assert (await booking.get(path, headers=service_only)).status_code == 403
        assert (await booking.get(path, headers=salon.headers)).status_code == 200  # admin


# -- cost ----------------------------------------------------------------------------------------


@contextmanager
def statements(services: Services) -> Iterator[list[str]]:
    engine = services.apps["booking"].state.db.engine.sync_engine
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_a_page_costs_the_same_queries_for_one_or_many_failures(
    services: Services, db: Database
) -> None:
    booking = services.clients["booking"]
    salon = await create_salon(db)
    company_id = salon.tenant.company_id
    ops = await operator(db, company_id)
    day = next_weekday(1)
    first = await book(booking, salon, at(day, 9))
    async with db.transaction(company_id) as session:
        await session.execute(
            sa.update(Appointment).where(Appointment.id == first).values(sync_status="failed")
        )
    await add_failure(db, company_id, utcnow(), "one")
    await failed(booking, ops)  # warms the key cache
    with statements(services) as few:
        assert len(await failed(booking, ops)) == 2
    for hour in (10, 11, 13, 14):
        appointment_id = await book(booking, salon, at(day, hour))
        async with db.transaction(company_id) as session:
            await session.execute(
                sa.update(Appointment)
                .where(Appointment.id == appointment_id)
                .values(sync_status="failed", calcom_booking_uid=f"uid-{uuid.uuid4().hex}")
            )
        await add_failure(db, company_id, utcnow(), f"more_{hour}")
    with statements(services) as many:
        assert len(await failed(booking, ops)) == 10
    assert len(many) == len(few) <= 12, many


async def test_a_successful_booking_writes_no_failure_record(
    services: Services, db: Database
) -> None:
    salon = await create_salon(db)
    with statements(services) as seen:
        await book(services.clients["booking"], salon, at(next_weekday(2), 9))
    assert seen and not any("booking_failures" in s for s in seen)


# -- overview ------------------------------------------------------------------------------------


async def test_overview_figures(
    booking: httpx.AsyncClient, db: Database, pool: ArqRedis, failing_marker: str
) -> None:
    salon = await create_salon(db)
    await enable_retell(db, salon)
    company_id = salon.tenant.company_id
    ops = await operator(db, company_id)
    other = await create_salon(db)
    now = utcnow()
    day_start, _ = local_day_bounds(now, "Europe/Berlin")
    day = next_weekday(1)
    ids = [await book(booking, salon, at(day, hour)) for hour in (9, 10, 11, 13)]
    agent = await call_function(
        booking,
        salon,
        "book_appointment",
        {
            "service": "Herrenhaarschnitt",
            "date": day.isoformat(),
            "time": "14:00",
            "customer_name": "Erika Musterfrau",
        },
    )
    assert agent.json()["status"] == "booked", agent.text
    refused = await booking.post(
        "/v1/appointments",
        json=body(salon, at(day, 15), notes=failing_marker),
        headers=salon.headers,
    )
    assert refused.status_code == 500
    await add_failure(db, company_id, day_start - timedelta(minutes=1), "before_today")
    # The other company's row is written in the system scope (a company session refuses it).
    async with db.transaction(SYSTEM) as session:
        session.add(
            WebhookEvent(
                company_id=other.tenant.company_id,
                source="calcom",
                event_id=uuid.uuid4().hex,
                event_type="BOOKING_CREATED",
                payload={},
                status="pending",
                created_at=now - timedelta(seconds=5000),
            )
        )
    async with db.transaction(company_id) as session:
        # One booking came from Cal.com (not an attempt of ours), one waits for its sync, one
        # failed it; one outbox row is done, another the oldest pending one (10 minutes).
        for appointment_id, values in zip(
            ids[:3],
            ({"source": "calcom"}, {"sync_status": "pending"}, {"sync_status": "failed"}),
            strict=True,
        ):
            await session.execute(
                sa.update(Appointment).where(Appointment.id == appointment_id).values(**values)
            )
        for appointment_id, values in (
            (ids[0], {"status": "done"}),
            (ids[1], {"created_at": now - timedelta(minutes=10)}),
        ):
            await session.execute(
                sa.update(OutboxEvent)
                .where(
                    OutboxEvent.aggregate_id == appointment_id,
                    OutboxEvent.job_name == "sync_appointment",
                )
                .values(**values)
            )
        for status, age_s, company in (
            ("pending", 300, company_id),
            ("pending", 30, company_id),
            ("failed", 900, company_id),
            ("processed", 1000, company_id),
        ):
            session.add(
                WebhookEvent(
                    company_id=company,
                    source="calcom",
                    event_id=uuid.uuid4().hex,
                    event_type="BOOKING_CREATED",
                    payload={},
                    status=status,
                    created_at=now - timedelta(seconds=age_s),
                )
            )
        for status, due in (
            ("pending", now - timedelta(minutes=5)),
            ("assigned", now - timedelta(hours=3)),
            ("resolved", now - timedelta(hours=3)),
            ("pending", now + timedelta(hours=1)),
        ):
            session.add(
                CallbackRequest(
                    phone_number="+491701234567",
                    reason="test",
                    status=status,
                    due_at=due,
                    branch_id=salon.branch_id,
                )
            )

    response = await booking.get("/v1/ops/overview", headers=ops)

    assert response.status_code == 200, response.text
    view = response.json()
    assert view["timezone"] == "Europe/Berlin"
    assert view["bookings_today"] == {
        "booked": 4,  # 3 API + 1 agent; the one turned into a Cal.com booking does not count
        "failed": 1,  # the database error; yesterday's failure is not today's
        "success_rate": 0.8,
        "sync_failed": 1,
        "day_start": day_start.astimezone(BERLIN).isoformat(),
        "attempts": 5,
        # Cal.com is not configured: a waiting sync is no failure, the failed one is
        "fully_succeeded": 3,
        "not_in_calcom": 1,
        "calcom_waiting": 0,
        "confirmations_failed": 0,
    }
    backlog = view["sync_backlog"]
    assert (backlog["appointments_pending"], backlog["outbox_pending"]) == (1, 4)
    assert 600 <= backlog["oldest_pending_age_s"] < 660
    webhooks = view["webhook_backlog"]
    assert (webhooks["pending"], webhooks["failed"]) == (2, 1)
    assert 300 <= webhooks["oldest_pending_age_s"] < 360
    assert view["breaker"] == {
        "name": f"calcom:{company_id}",
        "state": "closed",
        "calcom_configured": False,
        "calcom_state": "not_configured",
    }
    assert view["overdue_callbacks"] == 2

    breaker = CircuitBreaker(pool, f"calcom:{company_id}", failure_threshold=1)
    with pytest.raises(RuntimeError):
        async with breaker.guard():
            raise RuntimeError("Cal.com down")
    for _ in range(2):  # reading the state leaves it as it is
        again = (await booking.get("/v1/ops/overview", headers=ops)).json()
        assert again["breaker"]["state"] == "open"
    await breaker.reset()
