"""The processing job: one transaction per event, retries with growing delay, `failed` at the
end, the sweeper, and a real ARQ burst worker running it all end to end.

The failing handler is the one seam replaced here (`jobs._handler`): it runs the real Cal.com
handler, so the business change really happens, and then fails, so the test proves that the
change rolls back with the failure.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from arq import Retry, Worker
from arq.connections import ArqRedis, create_pool
from sqlalchemy.ext.asyncio import AsyncSession

from services.webhooks import jobs
from services.webhooks.ingest.handling import PROCESS_JOB, HandlerContext, TransientFailure, job_id
from services.webhooks.jobs import process_webhook_event, retry_delay, sweep_webhook_events
from services.webhooks.worker import WorkerSettings
from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.jobs.queue import WEBHOOKS_QUEUE, redis_settings
from shared.models import WebhookEvent
from tests.webhooks.conftest import (
    appointments,
    contract,
    create_calcom_salon,
    get_event,
    iso,
    new_uid,
    store_event,
    with_uid,
)

START = datetime(2030, 9, 2, 8, 0, tzinfo=UTC)


def created(uid: str, start: datetime) -> dict[str, Any]:
    return with_uid(
        contract("webhook-BOOKING_CREATED.example.json"),
        uid,
        startTime=iso(start),
        endTime=iso(start + timedelta(minutes=30)),
    )


def failing_for(event_ids: set[str], exc: Exception, times: int = 1000) -> Any:
    """A `_handler` that applies the real handler and then raises `exc` for these events
    (the first `times` tries)."""
    real = jobs._handler
    left = {"n": times}

    def pick(source: str) -> Any:
        handler = real(source)
        assert handler is not None

        async def flaky(session: AsyncSession, event: WebhookEvent, ctx: HandlerContext) -> Any:
            outcome = await handler(session, event, ctx)
            if event.id in event_ids and left["n"] > 0:
                left["n"] -= 1
                raise exc
            return outcome

        return flaky

    return pick


@pytest.mark.parametrize(
    "fault",
    [TransientFailure("Cal.com unreachable"), KeyError("a bug")],
    ids=["transient", "bug"],
)
async def test_a_failing_event_retries_with_growing_delay_then_fails_and_others_go_on(
    db: Database, ctx: dict[str, Any], monkeypatch: pytest.MonkeyPatch, fault: Exception
) -> None:
    cs = await create_calcom_salon(db)
    bad_uid, good_uid = new_uid(), new_uid()
    bad = await store_event(db, cs.company_id, created(bad_uid, START))
    good = await store_event(db, cs.company_id, created(good_uid, START + timedelta(hours=2)))
    monkeypatch.setattr(jobs, "_handler", failing_for({bad}, fault))
    defers = []
    for job_try in range(1, 5):
        with pytest.raises(Retry) as retry:
            await process_webhook_event({**ctx, "job_try": job_try}, bad)
        assert retry.value.defer_score is not None
        defers.append(retry.value.defer_score / 1000)
        event = await get_event(db, bad)
        assert (event.status, event.attempts) == ("pending", job_try)
        assert event.error_message == f"{type(fault).__name__}: {fault}"
    # 2**try seconds plus at most 25 % jitter: every delay longer than the one before.
    for job_try, defer in enumerate(defers, start=1):
        assert 2**job_try <= defer <= 2**job_try * 1.25
    assert defers == sorted(defers)
    assert await process_webhook_event({**ctx, "job_try": 5}, bad) == "failed"
    event = await get_event(db, bad)
    assert (event.status, event.attempts, event.processed_at) == ("failed", 5, None)
    # The failed event's changes rolled back; the other event is processed all the same.
    assert await process_webhook_event(ctx, good) == "processed"
    assert [a.calcom_booking_uid for a in await appointments(db, cs.company_id)] == [good_uid]


async def test_a_job_re_enqueued_by_the_sweeper_counts_the_earlier_tries(
    db: Database, ctx: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    cs = await create_calcom_salon(db)
    event_id = await store_event(db, cs.company_id, created(new_uid(), START))
    async with db.transaction(SYSTEM) as session:
        await session.execute(
            sa.update(WebhookEvent).where(WebhookEvent.id == event_id).values(attempts=4)
        )
    monkeypatch.setattr(jobs, "_handler", failing_for({event_id}, TransientFailure("down")))
    assert await process_webhook_event({**ctx, "job_try": 1}, event_id) == "failed"
    assert (await get_event(db, event_id)).attempts == 5


async def test_a_slow_event_times_out_inside_the_job_and_is_retried(
    db: Database, ctx: dict[str, Any], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    cs = await create_calcom_salon(db)
    event_id = await store_event(db, cs.company_id, created(new_uid(), START))
    real = jobs._handler

    def slow(source: str) -> Any:
        async def handler(session: AsyncSession, event: WebhookEvent, hctx: HandlerContext) -> Any:
            await asyncio.sleep(5)
            return await real(source)(session, event, hctx)  # type: ignore[misc]

        return handler

    monkeypatch.setattr(jobs, "_handler", slow)
    quick = settings.model_copy(update={"worker_job_timeout_s": 1})
    with pytest.raises(Retry):
        await process_webhook_event({**ctx, "settings": quick}, event_id)
    event = await get_event(db, event_id)
    assert (event.status, event.attempts) == ("pending", 1)
    assert event.error_message == "TransientFailure: processing took longer than 1 s"
    assert await appointments(db, cs.company_id) == []


def test_retry_delay_grows_and_is_capped() -> None:
    assert 2 <= retry_delay(1) <= 2.5
    assert 16 <= retry_delay(4) <= 20
    assert 60 <= retry_delay(10) <= 75


async def test_sweeper_re_enqueues_pending_and_stuck_events_once(
    db: Database, ctx: dict[str, Any], arq_pool: ArqRedis
) -> None:
    # A clock of its own (the year 2000), so events of other tests are never swept here.
    now = datetime(2000, 1, 1, 12, 0, tzinfo=UTC)
    body = created(new_uid(), START)
    ages = {
        "pending_old": ("pending", timedelta(seconds=61)),
        "pending_new": ("pending", timedelta(seconds=30)),
        "stuck": ("processing", timedelta(minutes=6)),
        "busy": ("processing", timedelta(minutes=4)),
        "done": ("processed", timedelta(hours=1)),
    }
    ids: dict[str, str] = {}
    for name, (status, age) in ages.items():
        event_id = await store_event(db, None, body)
        async with db.transaction(SYSTEM) as session:
            await session.execute(
                sa.update(WebhookEvent)
                .where(WebhookEvent.id == event_id)
                .values(status=status, updated_at=now - age, created_at=now - age)
            )
        ids[name] = event_id
    try:
        assert await sweep_webhook_events(ctx, now=now) == 2
        queued = {
            name: bool(await arq_pool.exists(f"arq:job:{job_id(event_id)}"))
            for name, event_id in ids.items()
        }
        assert queued == {
            "pending_old": True,
            "pending_new": False,
            "stuck": True,
            "busy": False,
            "done": False,
        }
        # Still queued: the job id refuses a second copy.
        assert await sweep_webhook_events(ctx, now=now) == 0
    finally:
        for event_id in ids.values():
            await arq_pool.zrem(WEBHOOKS_QUEUE, job_id(event_id))
            await arq_pool.delete(f"arq:job:{job_id(event_id)}")


def test_worker_settings_run_the_job_the_sweeper_and_reconciliation() -> None:
    settings: Any = WorkerSettings
    assert settings.queue_name == WEBHOOKS_QUEUE
    assert PROCESS_JOB in [f.__name__ for f in settings.functions]
    crons = {c.name: c for c in settings.cron_jobs}
    assert set(crons) == {
        "cron:sweep_webhook_events",
        "cron:reconcile_calcom",
        "cron:enforce_retention",
    }
    assert all(c.unique for c in crons.values())
    assert crons["cron:reconcile_calcom"].minute == set(range(0, 60, 5))
    assert (settings.keep_result, settings.max_tries) == (0, jobs.MAX_TRIES)
    assert settings.poll_delay <= 0.1  # part of the 500 ms acknowledgement-to-applied budget


async def test_a_real_arq_burst_worker_processes_and_retries_events(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    cs = await create_calcom_salon(db)
    first, flaky_uid = new_uid(), new_uid()
    steady = await store_event(db, cs.company_id, created(first, START))
    flaky = await store_event(db, cs.company_id, created(flaky_uid, START + timedelta(hours=1)))
    # The first try of one event hits a passing fault; ARQ runs it again after the defer.
    monkeypatch.setattr(jobs, "_handler", failing_for({flaky}, TransientFailure("blip"), times=1))
    queue = f"{WEBHOOKS_QUEUE}:test:{uuid.uuid4().hex[:8]}"  # no other test's jobs
    settings_cls: Any = WorkerSettings
    worker = Worker(
        functions=settings_cls.functions,
        queue_name=queue,
        redis_settings=redis_settings(settings),
        burst=True,
        poll_delay=0.05,
        ctx={"db": db, "settings": settings},
        handle_signals=False,
        max_tries=settings_cls.max_tries,
        keep_result=settings_cls.keep_result,
    )
    try:
        enqueue = await create_pool(redis_settings(settings))
        for event_id in (steady, flaky):
            job = await enqueue.enqueue_job(
                PROCESS_JOB, event_id, _job_id=job_id(event_id), _queue_name=queue
            )
            assert job is not None
        await enqueue.aclose()
        await asyncio.wait_for(worker.main(), timeout=30)
    finally:
        await worker.close()
    assert (worker.jobs_complete, worker.jobs_retried, worker.jobs_failed) == (2, 1, 0)
    steady_event, flaky_event = await get_event(db, steady), await get_event(db, flaky)
    assert (steady_event.status, steady_event.attempts) == ("processed", 1)
    assert (flaky_event.status, flaky_event.attempts, flaky_event.error_message) == (
        "processed",
        2,
        None,
    )
    uids = sorted(a.calcom_booking_uid or "" for a in await appointments(db, cs.company_id))
    assert uids == sorted([first, flaky_uid])
