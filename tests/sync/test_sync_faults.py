"""The sync under Cal.com faults: down, commit-then-reset, 429, a taken slot, a held lock,
the last ARQ try and the 24-hour limit. Nothing is lost, nothing is booked twice."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from arq import Retry
from arq.connections import ArqRedis
from sqlalchemy import func, select, update

from services.booking.calcom.sync import LOCK_PREFIX
from services.booking.jobs import SYNC_MAX_TRIES, sweep_outbox
from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.db.types import utcnow
from shared.jobs import outbox
from shared.models import CallbackRequest, OutboxEvent
from tests.conftest import Services
from tests.support.factories import next_weekday
from tests.support.fake_calcom import FakeCalcom
from tests.sync.conftest import (
    appointment,
    at,
    book,
    burst,
    cal_salon,
    keep_only,
    outbox_rows,
    reset_breaker,
    run_sync,
    slots,
    sync_rows,
)

CREATE = "POST /v2/bookings"
LOOKUP = "GET /v2/bookings"


async def test_hundred_bookings_while_calcom_is_down_all_sync_once_after_recovery(
    services: Services, db: Database, settings: Settings, pool: ArqRedis, fake: FakeCalcom
) -> None:
    cal = await cal_salon(db, fake, duration=15)
    fake.control(down=True)
    starts = slots(100, 15)
    clock = time.perf_counter()
    ids = [await book(services, cal, start) for start in starts]  # each asserts 201
    booked_s = time.perf_counter() - clock
    assert len(set(ids)) == 100
    rows = await sync_rows(db, cal.company_id)
    assert len(rows) == 100

    # First try of every job while Cal.com is down: each is deferred, none is lost.
    clock = time.perf_counter()
    for row in rows:
        with pytest.raises(Retry) as retry:
            await run_sync(db, settings, pool, row.id)
        assert (retry.value.defer_score or 0) >= 0
    deferred_s = time.perf_counter() - clock
    pending = await sync_rows(db, cal.company_id)
    assert {(r.status, r.attempts) for r in pending} == {("pending", 1)}
    assert all(r.last_error for r in pending)
    assert fake.performed == {}

    # Recovery: Cal.com answers again, the breaker is reset (or its open time passed), and
    # the rows' retry time has come (moved back instead of waiting).
    fake.control(down=False)
    await reset_breaker(pool, cal.company_id)
    async with db.transaction(SYSTEM) as session:
        await session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.id.in_([r.id for r in rows]))
            .values(available_at=utcnow() - timedelta(minutes=5))
        )
    clock = time.perf_counter()
    assert await sweep_outbox({"db": db, "redis": pool}) >= 100
    await keep_only(pool, [outbox.job_id(r.id) for r in rows])
    worker = await burst(db, settings)
    drained_s = time.perf_counter() - clock
    print(
        f"\n100 while down: booked in {booked_s:.2f} s, first tries deferred in "
        f"{deferred_s:.2f} s, swept + drained after recovery in {drained_s:.2f} s"
    )

    assert worker.jobs_complete == 100
    assert {r.status for r in await sync_rows(db, cal.company_id)} == {"done"}
    synced = [await appointment(db, i) for i in ids]
    assert {a.sync_status for a in synced} == {"synced"}
    remote = fake.bookings
    assert len(remote) == 100
    assert fake.performed[CREATE] == 100
    assert sorted(b["metadata"]["appointment_id"] for b in remote.values()) == sorted(ids)
    assert {a.calcom_booking_uid for a in synced} == set(remote)
    assert fake.violations == []


async def test_commit_then_reset_is_adopted_not_booked_twice(
    services: Services, db: Database, settings: Settings, pool: ArqRedis, fake: FakeCalcom
) -> None:
    cal = await cal_salon(db, fake)
    appointment_id = await book(services, cal, at(next_weekday(2), 11))
    [row] = await sync_rows(db, cal.company_id)
    fake.control(commit_then_reset=True, times=1, match=CREATE)

    with pytest.raises(Retry):
        await run_sync(db, settings, pool, row.id)
    [(uid, _)] = fake.bookings.items()  # Cal.com committed; we never heard the answer
    assert (await appointment(db, appointment_id)).calcom_booking_uid is None
    [waiting] = await sync_rows(db, cal.company_id)
    assert (waiting.status, waiting.attempts) == ("pending", 1)
    assert "CalcomTransient" in (waiting.last_error or "")

    assert await run_sync(db, settings, pool, row.id, job_try=2) == "synced"

    assert fake.performed[CREATE] == 1
    assert fake.calls[CREATE] == 1  # the retry looked the booking up instead of posting again
    assert list(fake.bookings) == [uid]
    stored = await appointment(db, appointment_id)
    assert (stored.calcom_booking_uid, stored.sync_status) == (uid, "synced")
    assert fake.violations == []


async def test_cancel_after_an_ambiguous_create_cancels_the_booking_cal_com_made(
    services: Services, db: Database, settings: Settings, pool: ArqRedis, fake: FakeCalcom
) -> None:
    """The create's answer is lost, the customer cancels, and the cancel's job runs before the
    create's retry: it must still find (by metadata) and cancel the booking Cal.com made."""
    cal = await cal_salon(db, fake)
    appointment_id = await book(services, cal, at(next_weekday(1), 9, 30))
    [created_row] = await sync_rows(db, cal.company_id)
    fake.control(commit_then_reset=True, times=1, match=CREATE)
    with pytest.raises(Retry):
        await run_sync(db, settings, pool, created_row.id)
    response = await services.clients["booking"].post(
        f"/v1/appointments/{appointment_id}/cancel", json={}, headers=cal.headers
    )
    assert response.status_code == 200
    pending = await sync_rows(db, cal.company_id, statuses=["pending"])
    [cancel_row] = [r for r in pending if r.payload["event_type"] == "booking_cancelled"]

    assert await run_sync(db, settings, pool, cancel_row.id) == "synced"
    assert await run_sync(db, settings, pool, created_row.id, job_try=2) == "synced"

    [(uid, remote)] = fake.bookings.items()
    assert remote["status"] == "cancelled"
    assert fake.calls[CREATE] == 1
    stored = await appointment(db, appointment_id)
    assert (stored.status, stored.calcom_booking_uid, stored.sync_status) == (
        "cancelled",
        uid,
        "synced",
    )


async def test_a_400_for_a_booking_that_is_ours_is_a_success(
    services: Services, db: Database, settings: Settings, pool: ArqRedis, fake: FakeCalcom
) -> None:
    """Cal.com already holds our booking (its answer was lost in an earlier life of the
    system): the create's 400 "already has booking" is recognised by the metadata."""
    cal = await cal_salon(db, fake)
    start = at(next_weekday(3), 15)
    appointment_id = await book(services, cal, start)
    ours = fake.book(
        cal.event_type_id,
        start,
        metadata={"appointment_id": appointment_id, "company_id": cal.company_id},
    )
    [row] = await sync_rows(db, cal.company_id)

    assert await run_sync(db, settings, pool, row.id) == "synced"

    stored = await appointment(db, appointment_id)
    assert (stored.calcom_booking_uid, stored.sync_status) == (ours["uid"], "synced")
    assert fake.performed == {}  # the one create was refused; nothing new in Cal.com
    assert fake.calls[CREATE] == 1
    assert len(fake.bookings) == 1


async def test_429_defers_at_least_until_the_rate_limit_resets(
    services: Services, db: Database, settings: Settings, pool: ArqRedis, fake: FakeCalcom
) -> None:
    cal = await cal_salon(db, fake)
    await book(services, cal, at(next_weekday(4), 9, 30))
    [row] = await sync_rows(db, cal.company_id)
    fake.control(status_override=429, times=1, match=CREATE, rate_limit_reset_s=7)

    with pytest.raises(Retry) as retry:
        await run_sync(db, settings, pool, row.id)

    assert (retry.value.defer_score or 0) >= 7000
    [waiting] = await sync_rows(db, cal.company_id)
    assert waiting.status == "pending"
    assert "Too Many Requests" in (waiting.last_error or "")
    assert waiting.available_at >= utcnow() + timedelta(seconds=6)
    assert fake.performed == {}


async def test_taken_slot_that_is_not_ours_fails_once_with_staff_notice_and_callback(
    services: Services, db: Database, settings: Settings, pool: ArqRedis, fake: FakeCalcom
) -> None:
    cal = await cal_salon(db, fake)
    start = at(next_weekday(1), 16)
    appointment_id = await book(services, cal, start)
    fake.book(cal.event_type_id, start, name="Jemand Anders")  # booked in Cal.com meanwhile
    [row] = await sync_rows(db, cal.company_id)

    assert await run_sync(db, settings, pool, row.id) == "failed"
    assert await run_sync(db, settings, pool, row.id, job_try=2) == "skipped"

    stored = await appointment(db, appointment_id)
    assert stored.sync_status == "failed"
    assert stored.sync_error == (
        "SyncRefused: Cal.com refused the booking: the slot is taken; "
        "Cal.com answered 400 (Bad Request)"
    )
    assert stored.calcom_booking_uid is None
    [failed] = await sync_rows(db, cal.company_id)
    assert failed.status == "failed"
    notices = [
        r
        for r in await outbox_rows(db, cal.company_id, "notify")
        if r.payload.get("event_type") == "booking_sync_failed"
    ]
    assert [n.payload["appointment_id"] for n in notices] == [appointment_id]
    async with db.transaction(cal.company_id, write=False) as session:
        callbacks = list((await session.execute(select(CallbackRequest))).scalars())
    assert len(callbacks) == 1
    callback = callbacks[0]
    assert (callback.priority, callback.status, callback.phone_number) == (
        "high",
        "pending",
        "+491701234567",
    )
    assert callback.reason.startswith("Der Termin am ")
    assert "Cal.com" in callback.reason
    assert (callback.service_id, callback.staff_id) == (stored.service_id, stored.staff_id)
    assert len(fake.bookings) == 1  # only the other customer's


async def test_service_without_event_type_is_a_permanent_failure(
    services: Services, db: Database, settings: Settings, pool: ArqRedis, fake: FakeCalcom
) -> None:
    cal = await cal_salon(db, fake, event_type=False)
    appointment_id = await book(services, cal, at(next_weekday(2), 9))
    [row] = await sync_rows(db, cal.company_id)

    assert await run_sync(db, settings, pool, row.id) == "failed"

    stored = await appointment(db, appointment_id)
    assert stored.sync_status == "failed"
    assert stored.sync_error == "SyncRefused: service has no Cal.com event type"
    assert sum(fake.calls.values()) == 0


async def test_a_held_lock_defers_the_job_by_one_to_two_seconds(
    services: Services, db: Database, settings: Settings, pool: ArqRedis, fake: FakeCalcom
) -> None:
    cal = await cal_salon(db, fake)
    appointment_id = await book(services, cal, at(next_weekday(3), 10))
    [row] = await sync_rows(db, cal.company_id)
    await pool.set(LOCK_PREFIX + appointment_id, "another-job", px=10_000)
    try:
        with pytest.raises(Retry) as retry:
            await run_sync(db, settings, pool, row.id)
        assert 1000 <= (retry.value.defer_score or 0) <= 2000
        assert fake.calls[CREATE] == 0 and fake.calls[LOOKUP] == 0
        [waiting] = await sync_rows(db, cal.company_id)
        assert (waiting.status, waiting.attempts) == ("pending", 0)
    finally:
        await pool.delete(LOCK_PREFIX + appointment_id)
    assert await run_sync(db, settings, pool, row.id, job_try=2) == "synced"


async def test_after_the_last_try_the_row_waits_for_the_sweeper(
    services: Services, db: Database, settings: Settings, pool: ArqRedis, fake: FakeCalcom
) -> None:
    cal = await cal_salon(db, fake)
    appointment_id = await book(services, cal, at(next_weekday(4), 13, 30))
    [row] = await sync_rows(db, cal.company_id)
    fake.control(status_override=503, times=1, match=CREATE)

    outcome = await run_sync(db, settings, pool, row.id, job_try=SYNC_MAX_TRIES)

    assert outcome == "deferred"  # no Retry: ARQ would drop it as "max tries exceeded"
    [waiting] = await sync_rows(db, cal.company_id)
    assert waiting.status == "pending" and waiting.available_at > utcnow()
    assert (await appointment(db, appointment_id)).sync_status == "pending"
    # Once due, the sweeper sends it again and it syncs.
    async with db.transaction(SYSTEM) as session:
        await session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.id == row.id)
            .values(available_at=utcnow() - timedelta(minutes=2))
        )
    await sweep_outbox({"db": db, "redis": pool})
    await keep_only(pool, [outbox.job_id(row.id)])
    await burst(db, settings)
    assert (await appointment(db, appointment_id)).sync_status == "synced"
    assert fake.performed[CREATE] == 1
    assert len(fake.bookings) == 1


async def test_a_change_pending_for_24_hours_is_given_up(
    services: Services, db: Database, settings: Settings, pool: ArqRedis, fake: FakeCalcom
) -> None:
    cal = await cal_salon(db, fake)
    appointment_id = await book(services, cal, at(next_weekday(5), 10))
    [row] = await sync_rows(db, cal.company_id)
    async with db.transaction(SYSTEM) as session:
        await session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.id == row.id)
            .values(created_at=utcnow() - timedelta(hours=24, minutes=1), attempts=40)
        )
    fake.control(down=True)

    assert await run_sync(db, settings, pool, row.id) == "failed"

    stored = await appointment(db, appointment_id)
    assert stored.sync_status == "failed"
    assert (stored.sync_error or "").startswith("Cal.com unreachable for 24 h")
    async with db.transaction(cal.company_id, write=False) as session:
        assert await session.scalar(select(func.count()).select_from(CallbackRequest)) == 1
    [failed] = await sync_rows(db, cal.company_id)
    assert failed.status == "failed"
