"""Events after commit: outbox rows in the booking transaction, enqueued after commit, and a
sweeper that re-enqueues what a crash between commit and enqueue left behind."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from arq import Worker
from arq.connections import ArqRedis, create_pool
from sqlalchemy import select, update

from services.booking.jobs import sweep_outbox, sync_appointment
from services.notifications.jobs import notify
from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.db.types import utcnow
from shared.jobs.queue import BOOKING_QUEUE, NOTIFY_QUEUE, redis_settings
from shared.models import OutboxEvent
from tests.booking.test_booking_api import at, body
from tests.conftest import Services
from tests.support.factories import create_salon, next_weekday


async def _outbox(db: Database, company_id: str) -> list[OutboxEvent]:
    async with db.transaction(SYSTEM, write=False) as session:
        rows = await session.execute(
            select(OutboxEvent)
            .where(OutboxEvent.company_id == company_id)
            .order_by(OutboxEvent.job_name)
        )
        return list(rows.scalars())


async def _empty_queues(settings: Settings, db: Database) -> None:
    """Forget the jobs and pending outbox rows earlier tests of this xdist worker left behind:
    they are not this test's business, the sweeper would send them again, and a notify job
    waiting for an earlier notice would keep a burst worker busy with deferred retries."""
    redis: ArqRedis = await create_pool(redis_settings(settings))
    try:
        await redis.delete(BOOKING_QUEUE, NOTIFY_QUEUE)
    finally:
        await redis.aclose()
    async with db.transaction(SYSTEM) as session:
        await session.execute(
            update(OutboxEvent).where(OutboxEvent.status == "pending").values(status="done")
        )


async def _drain(settings: Settings, db: Database) -> None:
    """Run the booking and notifications workers in burst mode until their queues are empty."""
    for queue, functions in ((BOOKING_QUEUE, [sync_appointment]), (NOTIFY_QUEUE, [notify])):
        worker = Worker(
            functions=functions,
            queue_name=queue,
            redis_settings=redis_settings(settings),
            burst=True,
            poll_delay=0.05,
            ctx={"db": db},
            handle_signals=False,
        )
        try:
            await worker.main()
        finally:
            await worker.close()


async def test_booking_enqueues_after_commit_and_workers_finish_the_rows(
    services: Services, settings: Settings, db: Database
) -> None:
    salon = await create_salon(db)
    await _empty_queues(settings, db)
    booking: httpx.AsyncClient = services.clients["booking"]
    day = next_weekday(4)
    response = await booking.post(
        "/v1/appointments", json=body(salon, at(day, 15)), headers=salon.headers
    )
    assert response.status_code == 201
    rows = await _outbox(db, salon.tenant.company_id)
    assert [(r.job_name, r.queue, r.status) for r in rows] == [
        ("notify", NOTIFY_QUEUE, "pending"),
        ("sync_appointment", BOOKING_QUEUE, "pending"),
    ]
    assert rows[0].payload["event_type"] == "booking_confirmed"
    assert rows[0].payload["appointment_id"] == response.json()["id"]
    await _drain(settings, db)
    assert [r.status for r in await _outbox(db, salon.tenant.company_id)] == ["done", "done"]


async def test_a_lost_enqueue_is_recovered_by_the_sweeper(
    services: Services, settings: Settings, db: Database
) -> None:
    salon = await create_salon(db)
    await _empty_queues(settings, db)
    app = services.apps["booking"]
    pool, app.state.arq = app.state.arq, None  # the process "dies" between commit and enqueue
    try:
        response = await services.clients["booking"].post(
            "/v1/appointments",
            json=body(salon, at(next_weekday(4), 16)),
            headers=salon.headers,
        )
    finally:
        app.state.arq = pool
    assert response.status_code == 201
    async with db.transaction(SYSTEM) as session:
        await session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.company_id == salon.tenant.company_id)
            .values(available_at=utcnow() - timedelta(minutes=2))
        )
    redis: ArqRedis = await create_pool(redis_settings(settings))
    try:
        ctx: dict[str, Any] = {"db": db, "redis": redis}
        assert await sweep_outbox(ctx) >= 2
    finally:
        await redis.aclose()
    await _drain(settings, db)
    assert [r.status for r in await _outbox(db, salon.tenant.company_id)] == ["done", "done"]


async def test_rolled_back_booking_leaves_no_outbox_row(services: Services, db: Database) -> None:
    salon = await create_salon(db)
    response = await services.clients["booking"].post(
        "/v1/appointments",
        json={**body(salon, at(next_weekday(1), 12, 45))},  # in the break: refused
        headers=salon.headers,
    )
    assert response.status_code == 422
    assert await _outbox(db, salon.tenant.company_id) == []


async def test_expired_idempotency_keys_are_reaped(db: Database) -> None:
    from services.booking.jobs import reap_idempotency_keys
    from shared.models import IdempotencyKey

    salon = await create_salon(db)
    now = utcnow()
    async with db.transaction(salon.tenant.company_id) as session:
        for key, expires in (
            ("old", now - timedelta(seconds=1)),
            ("new", now + timedelta(hours=47)),
        ):
            session.add(
                IdempotencyKey(
                    key=key,
                    request_fingerprint="f",
                    response_status=201,
                    response_body={},
                    created_at=now - timedelta(hours=48),
                    expires_at=expires,
                )
            )
    assert await reap_idempotency_keys({"db": db}) >= 1
    async with db.transaction(salon.tenant.company_id, write=False) as session:
        keys = (await session.execute(select(IdempotencyKey.key))).scalars().all()
    assert keys == ["new"]
