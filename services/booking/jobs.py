"""Jobs of the booking worker: Cal.com sync of an appointment, the outbox sweeper, the reaper,
the callback escalation cron."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import datetime, timedelta

import httpx
from arq import Retry
from arq.connections import ArqRedis
from prometheus_client import Counter
from redis.asyncio import Redis
from sqlalchemy import delete, select, update

from services.booking.calcom import sync as calcom_sync
from services.booking.calcom.sync import Snapshot, SyncRefused
from services.booking.callbacks import escalation as callback_escalation
from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.db.types import utcnow
from shared.integrations.calcom.client import CalcomClient
from shared.integrations.calcom.errors import CalcomError, CalcomRejected, CircuitOpen
from shared.integrations.calcom.retry import backoff_delay
from shared.jobs import outbox
from shared.jobs.context import JobContext
from shared.jobs.queue import BOOKING_QUEUE
from shared.jobs.tasks import TaskRegistry
from shared.models import Company, IdempotencyKey, OutboxEvent
from shared.observability.logging import correlation_id_var
from shared.security.outbound import outbound_client

log = logging.getLogger(__name__)

# ARQ tries of one enqueue of `sync_appointment` (worker.py registers the job with it). After
# the last one the row stays pending and the sweeper starts a new round later.
SYNC_MAX_TRIES = 5
# Outside the job timeout: a killed worker's lock is gone before ARQ re-runs its job
# (job timeout + 10 s), and a running job never outlives its lock.
LOCK_MARGIN_S = 5.0
LOCK_BUSY_DEFER_S = (1.0, 2.0)
# Used when a job runs without the worker's shared client (tests calling the job directly).
CALCOM_HTTP_TIMEOUT = httpx.Timeout(10.0, connect=3.0)
SWEEP_BATCH = 50

SYNC_OUTCOMES = Counter(
    "calcom_sync_total",
    "Runs of the Cal.com sync job by outcome (synced, local_only, skipped, busy, deferred, "
    "failed, retry, error); failed = given up for good, deferred/retry = Cal.com unreachable.",
    ["outcome"],
)

tasks = TaskRegistry(queue=BOOKING_QUEUE)


class BookingContext(JobContext, total=False):
    """The booking worker's context: a Redis client with socket timeouts (worker.py) for the
    per-appointment sync lock and the shared circuit breaker."""

    redis_client: Redis


@tasks.task(max_tries=SYNC_MAX_TRIES)
async def sync_appointment(ctx: BookingContext, outbox_id: str) -> str:
    """Converge one appointment's Cal.com booking to its current state (idempotent).

    Returns what happened: skipped, local_only, busy, synced, deferred or failed. A transient
    Cal.com failure raises `arq.Retry` with a growing delay while tries remain. Each run is
    counted in `calcom_sync_total{outcome}` (also `retry`, and `error` for anything else).
    """
    try:
        outcome = await _sync_appointment(ctx, outbox_id)
    except Retry:
        SYNC_OUTCOMES.labels("retry").inc()
        raise
    except Exception:
        SYNC_OUTCOMES.labels("error").inc()
        raise
    SYNC_OUTCOMES.labels(outcome).inc()
    return outcome


async def _sync_appointment(ctx: BookingContext, outbox_id: str) -> str:
    db = ctx["db"]
    # The job names only its outbox row: read it in the system scope to learn its company;
    # everything after runs in that company's scope.
    async with db.transaction(SYSTEM, write=False) as session:
        event = await session.get(OutboxEvent, outbox_id)
        if event is None or event.status in calcom_sync.FINAL_OUTBOX_STATUSES:
            return "skipped"
        appointment_id = str(event.payload.get("appointment_id") or "")
        company = await session.get(Company, event.company_id) if event.company_id else None
        correlation_id = event.correlation_id
    if company is None or not company.calcom_api_key or not appointment_id:
        async with db.transaction(company.id if company else SYSTEM) as session:
            await calcom_sync.finish_row(session, outbox_id, "done")
        return "local_only"
    token = correlation_id_var.set(correlation_id)
    try:
        return await _sync_with_lock(ctx, db, outbox_id, appointment_id, company.id)
    finally:
        correlation_id_var.reset(token)


async def _sync_with_lock(
    ctx: BookingContext, db: Database, outbox_id: str, appointment_id: str, company_id: str
) -> str:
    settings = ctx.get("settings") or db.settings
    redis = _redis(ctx)
    job_try = ctx.get("job_try") or 1
    ttl_s = settings.worker_job_timeout_s + LOCK_MARGIN_S
    async with calcom_sync.appointment_lock(redis, appointment_id, ttl_s) as held:
        if held:
            return await _sync_locked(ctx, db, settings, outbox_id, company_id, job_try)
    if job_try < SYNC_MAX_TRIES:
        raise Retry(defer=random.uniform(*LOCK_BUSY_DEFER_S))
    async with db.transaction(company_id) as session:
        await calcom_sync.record_transient(
            session, outbox_id, "another sync of this appointment was running", utcnow()
        )
    return "busy"


async def _sync_locked(
    ctx: BookingContext,
    db: Database,
    settings: Settings,
    outbox_id: str,
    company_id: str,
    job_try: int,
) -> str:
    async with db.transaction(company_id) as session:
        started = await calcom_sync.begin_attempt(session, outbox_id, job_try)
    if started is None:
        return "skipped"
    if isinstance(started, str):
        return started
    snapshot = started
    try:
        async with _http(ctx) as http:
            client = CalcomClient.for_company(
                snapshot.company, settings=settings, http=http, redis=_redis(ctx), db=db
            )
            uid = await calcom_sync.converge(client, snapshot)
    except (SyncRefused, CalcomRejected) as exc:
        return await _fail(db, outbox_id, snapshot, calcom_sync.describe(exc))
    except (CalcomError, CircuitOpen, TimeoutError) as exc:
        return await _defer(db, outbox_id, snapshot, exc, job_try)
    async with db.transaction(company_id) as session:
        await calcom_sync.record_success(session, outbox_id, snapshot, uid, utcnow())
    return "synced"


async def _fail(db: Database, outbox_id: str, snapshot: Snapshot, error: str) -> str:
    log.warning(
        "Cal.com sync failed for good",
        extra={"appointment_id": snapshot.appointment_id, "error": error},
    )
    async with db.transaction(snapshot.company.id) as session:
        await calcom_sync.record_failure(session, outbox_id, snapshot, error, utcnow())
    return "failed"


async def _defer(
    db: Database, outbox_id: str, snapshot: Snapshot, exc: BaseException, job_try: int
) -> str:
    """Transient: keep the row pending; Retry while tries remain, else leave it to the sweeper.
    A change pending for GIVE_UP_AFTER (24 h) becomes a permanent failure."""
    now = utcnow()
    error = calcom_sync.describe(exc)
    if calcom_sync.expired(snapshot.changed_at, now):
        return await _fail(db, outbox_id, snapshot, f"Cal.com unreachable for 24 h: {error}")
    delay = backoff_delay(job_try, retry_after_s=getattr(exc, "retry_after_s", None))
    async with db.transaction(snapshot.company.id) as session:
        await calcom_sync.record_transient(
            session, outbox_id, error, now + timedelta(seconds=delay)
        )
    if job_try < SYNC_MAX_TRIES:
        raise Retry(defer=delay)
    return "deferred"


def _redis(ctx: BookingContext) -> Redis:
    """The worker's Redis client with socket timeouts, else ARQ's connection."""
    return ctx.get("redis_client") or ctx["redis"]


def _http(ctx: JobContext) -> contextlib.AbstractAsyncContextManager[httpx.AsyncClient]:
    """The worker's shared client, or a short-lived one when the job runs outside a worker."""
    shared = ctx.get("http")
    if shared is not None:
        return contextlib.nullcontext(shared)
    settings = ctx.get("settings") or ctx["db"].settings
    return outbound_client(settings, timeout=CALCOM_HTTP_TIMEOUT)


@tasks.cron(second={0}, unique=True, run_at_startup=True)
async def sweep_outbox(ctx: JobContext) -> int:
    """Re-enqueue outbox rows still pending after the grace period (lost enqueue, lost Redis,
    a sync left for later). Enqueues run in concurrent batches; a row whose job is still
    queued is refused by ARQ's `_job_id` check, which is harmless. Sent rows get
    `available_at = now`, so a backlog larger than one sweep rotates instead of starving."""
    db = ctx["db"]
    pool = ctx["redis"]
    now = utcnow()
    async with db.transaction(SYSTEM, write=False) as session:
        due = await outbox.due_for_sweep(session, now)
    sent_ids: list[str] = []
    for start in range(0, len(due), SWEEP_BATCH):
        batch = due[start : start + SWEEP_BATCH]
        results = await asyncio.gather(*(outbox.send(pool, event) for event in batch))
        sent_ids += [event.id for event, ok in zip(batch, results, strict=True) if ok]
    if sent_ids:
        await _touch(db, sent_ids, now)
        log.info("outbox sweeper re-enqueued %d jobs", len(sent_ids))
    return len(sent_ids)


async def _touch(db: Database, ids: list[str], now: datetime) -> None:
    """Restart the grace period of swept rows that nobody moved meanwhile."""
    async with db.transaction(SYSTEM) as session:
        await session.execute(
            update(OutboxEvent)
            .where(
                OutboxEvent.id.in_(ids),
                OutboxEvent.status == "pending",
                OutboxEvent.available_at <= now - outbox.SWEEP_GRACE,
            )
            .values(available_at=now)
        )


@tasks.cron(minute={17}, second={30}, unique=True)
async def reap_idempotency_keys(ctx: JobContext) -> int:
    """Delete idempotency keys past their retention (48 h), in bounded batches."""
    db = ctx["db"]
    async with db.transaction(SYSTEM) as session:
        expired = (
            (
                await session.execute(
                    select(IdempotencyKey.id)
                    .where(IdempotencyKey.expires_at < utcnow())
                    .limit(5000)
                )
            )
            .scalars()
            .all()
        )
        if expired:
            await session.execute(delete(IdempotencyKey).where(IdempotencyKey.id.in_(expired)))
    return len(expired)


@tasks.cron(second={30}, unique=True)
async def escalate_overdue_callbacks(ctx: JobContext) -> int:
    """Escalate the callbacks due now (see callbacks/escalation.py); notifications are
    enqueued after each callback's commit."""
    db = ctx["db"]
    redis = ctx.get("redis")
    return await callback_escalation.escalate_overdue(
        db, now=utcnow(), pool=redis if isinstance(redis, ArqRedis) else None
    )
