"""Jobs of the webhooks worker: process one stored event, and sweep up events left behind.

Processing is one transaction: the event row (locked), the business changes and the outcome
commit together, so a crash anywhere leaves the event `pending` and its effects absent, and
the next try starts clean. A fault is recorded in a transaction of its own and retried with a
growing delay; after the last try the event is `failed` (listed and replayable by operators).
Nothing escapes for good with the row still saying `pending`.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import random
from datetime import datetime, timedelta
from typing import cast

import sqlalchemy as sa
from arq import Retry
from arq.connections import ArqRedis
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from services.webhooks.ingest import metrics as event_metrics
from services.webhooks.ingest.handling import (
    PROCESS_JOB,
    Handler,
    HandlerContext,
    Outcome,
    TransientFailure,
    ignored,
    job_id,
)
from shared.config import Settings, get_settings
from shared.db.tenancy import SYSTEM, bind_tenant
from shared.db.types import utcnow
from shared.jobs.context import JobContext
from shared.jobs.outbox import dispatch_staged
from shared.jobs.queue import WEBHOOKS_QUEUE
from shared.jobs.tasks import TaskRegistry
from shared.models import WebhookEvent

log = logging.getLogger(__name__)

MAX_TRIES = 5  # as the worker's max_tries: the 5th try is the last
MAX_DEFER_S = 60.0
FINISHED = ("processed", "ignored")
PENDING_GRACE = timedelta(seconds=60)
STUCK_AFTER = timedelta(minutes=5)
SWEEP_LIMIT = 500
PASSING_FAULTS = (TransientFailure, DBAPIError, RedisError)

tasks = TaskRegistry(queue=WEBHOOKS_QUEUE)


def retry_delay(attempt: int) -> float:
    """Seconds before the next try: 2**attempt, capped, plus up to 25 % jitter (so the
    delays of consecutive tries never overlap: each is longer than the one before)."""
    base = min(2.0 ** max(attempt, 1), MAX_DEFER_S)
    return base * (1.0 + random.random() * 0.25)


def _handler(source: str) -> Handler | None:
    """The handler of a source; Retell's is imported lazily (another module's contract)."""
    if source == "calcom":
        from services.webhooks.calcom.events import handle

        return handle
    if source == "retell":
        module = importlib.import_module("services.webhooks.retell.events")
        return cast(Handler, module.handle)
    return None


def _settings(ctx: JobContext) -> Settings:
    settings = ctx.get("settings")
    return settings if isinstance(settings, Settings) else get_settings()


def _budget_s(settings: Settings) -> float:
    """Our own deadline, inside ARQ's job timeout: a slow event is recorded as a failure
    (and retried) instead of being cancelled silently by ARQ, which would not retry it."""
    return max(1.0, settings.worker_job_timeout_s * 0.8)


@tasks.task()
async def process_webhook_event(ctx: JobContext, webhook_event_id: str) -> str:
    """Apply one stored webhook event (idempotent: a finished event is skipped)."""
    settings = _settings(ctx)
    budget = _budget_s(settings)
    deadline = asyncio.timeout(budget)
    try:
        async with deadline:
            return await _process(ctx, settings, webhook_event_id)
    except Exception as exc:
        if isinstance(exc, TimeoutError) and deadline.expired():
            exc = TransientFailure(f"processing took longer than {budget:g} s")
        return await _record_failure(ctx, webhook_event_id, exc)


async def _process(ctx: JobContext, settings: Settings, webhook_event_id: str) -> str:
    db = ctx["db"]
    now = utcnow()
    async with db.transaction(SYSTEM) as session:
        event = await _locked(session, webhook_event_id)
        if event is None:
            return "missing"
        if event.status in FINISHED:
            return "skipped"
        # `processing` and the attempt are written with the outcome: inside this one
        # transaction nobody could see them earlier, and a separate UPDATE costs a round trip.
        handler = _handler(event.source)
        if handler is None:
            outcome: Outcome = ignored(f"unknown source {event.source}")
        else:
            if event.source == "calcom" and event.company_id:
                bind_tenant(session, event.company_id)
            outcome = await handler(session, event, HandlerContext(ctx["redis"], settings, now))
        event.attempts += 1
        event.status = outcome.status
        event.error_message = outcome.reason
        event.processed_at = utcnow()
        source = event.source
    event_metrics.count(source, outcome.status)
    await dispatch_staged(session, _pool(ctx))
    return outcome.status


async def _locked(session: AsyncSession, webhook_event_id: str) -> WebhookEvent | None:
    """The event row, locked against a concurrent job (MariaDB; SQLite: BEGIN IMMEDIATE)."""
    return await session.scalar(
        sa.select(WebhookEvent)
        .where(WebhookEvent.id == webhook_event_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _pool(ctx: JobContext) -> ArqRedis | None:
    redis = ctx.get("redis")
    return redis if isinstance(redis, ArqRedis) else None


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text[:2000]


async def _record_failure(ctx: JobContext, webhook_event_id: str, exc: Exception) -> str:
    """After the rollback: count the try and keep the error, then retry or give up."""
    job_try = ctx.get("job_try") or 1
    if isinstance(exc, PASSING_FAULTS):
        log.warning(
            "webhook event failed; will retry",
            extra={"webhook_event_id": webhook_event_id, "error": _describe(exc)},
        )
    else:
        log.exception("webhook event failed (bug or bad data)", exc_info=exc)
    db = ctx["db"]
    try:
        async with db.transaction(SYSTEM) as session:
            event = await _locked(session, webhook_event_id)
            if event is None or event.status in FINISHED:
                return "skipped"  # another job finished it meanwhile
            event.attempts += 1
            # A job the sweeper re-enqueued starts at job_try 1 again: the row remembers.
            attempt = max(job_try, event.attempts)
            event.error_message = _describe(exc)
            event.status = "failed" if attempt >= MAX_TRIES else "pending"
            source = event.source
    except Exception as record_error:
        log.warning("could not record the failure", extra={"error": _describe(record_error)})
        if job_try >= MAX_TRIES:
            raise  # the row still says pending: the sweeper brings it back later
        raise Retry(defer=retry_delay(job_try)) from exc
    if attempt >= MAX_TRIES:
        event_metrics.count(source, "failed")
        return "failed"
    event_metrics.count(source, "retried")
    raise Retry(defer=retry_delay(attempt)) from exc


@tasks.cron(second={5}, unique=True, run_at_startup=True)
async def sweep_webhook_events(ctx: JobContext, now: datetime | None = None) -> int:
    """Re-enqueue events left `pending` over a minute (lost enqueue, lost Redis) or stuck in
    `processing` over five (a killed worker). The job id dedupes against a queued job; with
    `keep_result=0` a finished job's id can be enqueued again."""
    db = ctx["db"]
    pool = ctx["redis"]
    now = now or utcnow()
    async with db.transaction(SYSTEM, write=False) as session:
        rows = await session.execute(
            sa.select(WebhookEvent.id)
            .where(
                sa.or_(
                    sa.and_(
                        WebhookEvent.status == "pending",
                        WebhookEvent.updated_at <= now - PENDING_GRACE,
                    ),
                    sa.and_(
                        WebhookEvent.status == "processing",
                        WebhookEvent.updated_at <= now - STUCK_AFTER,
                    ),
                )
            )
            .order_by(WebhookEvent.created_at)
            .limit(SWEEP_LIMIT)
        )
        ids = list(rows.scalars())
    sent = 0
    for event_id in ids:
        job = await pool.enqueue_job(
            PROCESS_JOB, event_id, _job_id=job_id(event_id), _queue_name=WEBHOOKS_QUEUE
        )
        sent += job is not None
    if sent:
        log.info("webhook sweeper re-enqueued %d events", sent)
    return sent
