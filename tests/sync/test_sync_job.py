"""The `sync_appointment` job against the fake Cal.com: create, cancel, reschedule, local-only
companies, repeats and reordering, and the outbox sweeper that feeds it."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from arq.connections import ArqRedis
from sqlalchemy import select, update

from services.booking.calcom.sync import attendee_email, expired
from services.booking.jobs import sweep_outbox
from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.db.types import utcnow
from shared.jobs import outbox
from shared.models import ApiCallLog, OutboxEvent
from tests.conftest import Services
from tests.support.factories import create_salon, next_weekday
from tests.support.fake_calcom import FakeCalcom
from tests.sync.conftest import (
    appointment,
    at,
    book,
    burst,
    cal_salon,
    keep_only,
    run_sync,
    sync_rows,
)

CREATE = "POST /v2/bookings"
CANCEL = "POST /v2/bookings/{uid}/cancel"
RESCHEDULE = "POST /v2/bookings/{uid}/reschedule"


async def test_a_booking_is_created_in_calcom_with_our_metadata(
    services: Services, db: Database, settings: Settings, pool: ArqRedis, fake: FakeCalcom
) -> None:
    cal = await cal_salon(db, fake)
    start = at(next_weekday(1), 10)
    appointment_id = await book(services, cal, start)
    [row] = await sync_rows(db, cal.company_id)

    assert await run_sync(db, settings, pool, row.id) == "synced"

    [(uid, remote)] = fake.bookings.items()
    stored = await appointment(db, appointment_id)
    assert (stored.calcom_booking_uid, stored.sync_status, stored.sync_error) == (
        uid,
        "synced",
        None,
    )
    assert stored.synced_at is not None and utcnow() - stored.synced_at < timedelta(minutes=1)
    assert remote["metadata"] == {"appointment_id": appointment_id, "company_id": cal.company_id}
    assert remote["start"] == _utc_z(start)
    assert remote["eventTypeId"] == cal.event_type_id
    attendee = remote["attendees"][0]
    # The customer gave no e-mail: a reserved, never deliverable address from the phone.
    assert attendee == {
        "name": "Max Mustermann",
        "email": "491701234567@phone.invalid",
        "timeZone": "Europe/Berlin",
        "language": "en",
        "absent": False,
        "phoneNumber": "+491701234567",
    }
    assert fake.performed[CREATE] == 1
    assert fake.violations == []  # cal-api-version, auth and body as the OpenAPI says
    [done] = await sync_rows(db, cal.company_id)
    assert (done.status, done.attempts, done.last_error) == ("done", 1, None)
    async with db.transaction(SYSTEM, write=False) as session:
        logged = (
            await session.execute(
                select(ApiCallLog.method, ApiCallLog.endpoint, ApiCallLog.response_status).where(
                    ApiCallLog.company_id == cal.company_id, ApiCallLog.method == "POST"
                )
            )
        ).all()
    assert [tuple(r) for r in logged] == [("POST", "/v2/bookings", 201)]


def _utc_z(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


async def test_cancel_and_reschedule_follow_the_appointment(
    services: Services, db: Database, settings: Settings, pool: ArqRedis, fake: FakeCalcom
) -> None:
    cal = await cal_salon(db, fake)
    day = next_weekday(2)
    first = await book(services, cal, at(day, 9))
    second = await book(services, cal, at(day, 14))
    for row in await sync_rows(db, cal.company_id):
        assert await run_sync(db, settings, pool, row.id) == "synced"
    old_uid = (await appointment(db, second)).calcom_booking_uid
    first_uid = (await appointment(db, first)).calcom_booking_uid
    assert old_uid and first_uid

    booking = services.clients["booking"]
    response = await booking.post(
        f"/v1/appointments/{first}/cancel", json={"reason": "krank"}, headers=cal.headers
    )
    assert response.status_code == 200, response.text
    moved_to = at(day, 16, 30)
    response = await booking.post(
        f"/v1/appointments/{second}/reschedule",
        json={"start": moved_to.isoformat()},
        headers=cal.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["sync_status"] == "pending"
    for row in await sync_rows(db, cal.company_id, statuses=["pending"]):
        assert await run_sync(db, settings, pool, row.id) == "synced"

    remote = fake.bookings
    assert remote[first_uid]["status"] == "cancelled"
    assert remote[first_uid]["cancellationReason"] == "krank"
    moved = await appointment(db, second)
    assert moved.sync_status == "synced"
    assert moved.calcom_booking_uid not in (None, old_uid)
    new = remote[moved.calcom_booking_uid]
    assert (new["status"], new["start"], new["rescheduledFromUid"]) == (
        "accepted",
        _utc_z(moved_to),
        old_uid,
    )
    assert new["metadata"]["appointment_id"] == second
    assert remote[old_uid]["status"] == "cancelled"
    assert fake.performed == {CREATE: 2, CANCEL: 1, RESCHEDULE: 1}
    assert fake.violations == []
    assert {r.status for r in await sync_rows(db, cal.company_id)} == {"done"}


async def test_company_without_calcom_stays_local(
    services: Services, db: Database, settings: Settings, pool: ArqRedis, fake: FakeCalcom
) -> None:
    salon = await create_salon(db, buffer_after=0)
    response = await services.clients["booking"].post(
        "/v1/appointments",
        json={
            "service_id": salon.service_id,
            "staff_id": salon.staff_ids[0],
            "start": at(next_weekday(3), 11).isoformat(),
            "customer": {"name": "Erika", "phone": "+491709876543"},
        },
        headers=salon.headers,
    )
    assert response.status_code == 201
    [row] = await sync_rows(db, salon.tenant.company_id)

    assert await run_sync(db, settings, pool, row.id) == "local_only"

    stored = await appointment(db, response.json()["id"])
    assert (stored.sync_status, stored.calcom_booking_uid, stored.synced_at) == (
        "local_only",
        None,
        None,
    )
    assert [r.status for r in await sync_rows(db, salon.tenant.company_id)] == ["done"]
    assert sum(fake.calls.values()) == 0


async def test_repeated_and_concurrent_deliveries_make_one_booking(
    services: Services, db: Database, settings: Settings, pool: ArqRedis, fake: FakeCalcom
) -> None:
    """The same job enqueued 30 times at once, swept again and run by a real ARQ worker, then
    run directly twice more: one booking in Cal.com."""
    cal = await cal_salon(db, fake)
    appointment_id = await book(services, cal, at(next_weekday(4), 15))
    [row] = await sync_rows(db, cal.company_id)
    job_id = outbox.job_id(row.id)
    await keep_only(pool, [job_id])
    await asyncio.gather(*(outbox.send(pool, row) for _ in range(30)))
    assert await pool.zcard("arq:queue:booking") == 1

    worker = await burst(db, settings)

    assert (worker.jobs_complete, worker.jobs_failed, worker.jobs_retried) == (1, 0, 0)
    assert await run_sync(db, settings, pool, row.id) == "skipped"
    assert await run_sync(db, settings, pool, row.id, job_try=2) == "skipped"
    assert fake.performed[CREATE] == 1
    [uid] = fake.bookings
    assert (await appointment(db, appointment_id)).calcom_booking_uid == uid
    assert fake.violations == []


async def test_jobs_run_out_of_order_converge_to_the_current_state(
    services: Services, db: Database, settings: Settings, pool: ArqRedis, fake: FakeCalcom
) -> None:
    """Cancelled before its first sync ran; the cancel's job runs first, then the create's:
    Cal.com never gets a booking."""
    cal = await cal_salon(db, fake)
    appointment_id = await book(services, cal, at(next_weekday(1), 13))
    response = await services.clients["booking"].post(
        f"/v1/appointments/{appointment_id}/cancel", json={}, headers=cal.headers
    )
    assert response.status_code == 200
    created_row, cancelled_row = await sync_rows(db, cal.company_id)
    assert cancelled_row.payload["event_type"] == "booking_cancelled"

    assert await run_sync(db, settings, pool, cancelled_row.id) == "synced"
    assert await run_sync(db, settings, pool, created_row.id) == "synced"

    assert fake.bookings == {}
    assert fake.performed == {}
    stored = await appointment(db, appointment_id)
    assert (stored.status, stored.calcom_booking_uid) == ("cancelled", None)
    assert [r.status for r in await sync_rows(db, cal.company_id)] == ["done", "done"]


async def test_sweeper_reenqueues_a_large_backlog_quickly_and_rotates_it(
    db: Database, settings: Settings, pool: ArqRedis
) -> None:
    """150 rows left pending (lost enqueues): one sweep sends them all, in well under a
    second, and restarts their grace period so the next sweep does not resend them."""
    salon = await create_salon(db)
    old = utcnow() - timedelta(minutes=5)
    async with db.transaction(SYSTEM) as session:
        rows = [
            OutboxEvent(
                queue="arq:queue:booking",
                job_name="sync_appointment",
                payload={"appointment_id": f"missing-{i}"},
                company_id=salon.tenant.company_id,
                aggregate_id=None,
                available_at=old,
            )
            for i in range(150)
        ]
        session.add_all(rows)
    ids = {r.id for r in rows}
    ctx = {"db": db, "redis": pool}

    started = time.perf_counter()
    sent = await sweep_outbox(ctx)
    elapsed = time.perf_counter() - started

    assert sent >= 150
    queued = {raw.decode() for raw in await pool.zrange("arq:queue:booking", 0, -1)}
    assert {outbox.job_id(i) for i in ids} <= queued
    assert elapsed < 2.0, f"sweeping {sent} rows took {elapsed:.2f} s"
    print(f"\nsweep_outbox: {sent} rows in {elapsed * 1000:.0f} ms")
    swept = await _available_at(db, ids)
    assert all(moment > old for moment in swept.values())
    await sweep_outbox(ctx)
    assert await _available_at(db, ids) == swept  # not due again for another grace period
    await keep_only(pool, [])
    async with db.transaction(SYSTEM) as session:
        await session.execute(
            update(OutboxEvent).where(OutboxEvent.id.in_(ids)).values(status="done")
        )


async def _available_at(db: Database, ids: set[str]) -> dict[str, datetime]:
    async with db.transaction(SYSTEM, write=False) as session:
        rows = await session.execute(
            select(OutboxEvent.id, OutboxEvent.available_at).where(OutboxEvent.id.in_(ids))
        )
        return {row_id: moment for row_id, moment in rows}


def test_attendee_email_falls_back_to_a_reserved_undeliverable_address() -> None:
    assert attendee_email("erika@example.org", "+491701234567", "c1") == "erika@example.org"
    assert attendee_email(None, "+491701234567", "c1") == "491701234567@phone.invalid"
    assert attendee_email("", "+49 170 1234567", "c1") == "491701234567@phone.invalid"
    assert attendee_email(None, None, "c-42") == "c-42@phone.invalid"


def test_a_change_expires_after_exactly_24_hours() -> None:
    changed = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert not expired(changed, changed + timedelta(hours=23, minutes=59, seconds=59))
    assert expired(changed, changed + timedelta(hours=24))
