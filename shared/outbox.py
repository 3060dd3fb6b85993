"""The transactional outbox: jobs are staged as rows in the business transaction and sent to
their ARQ queue only after the commit. A sweeper re-enqueues rows still pending after a grace
period (a crash between commit and enqueue, Redis losing data), so nothing is lost; ARQ's
`_job_id` (the outbox id) and idempotent handlers make the repeat harmless.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from arq.connections import ArqRedis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.types import utcnow
from shared.logging import correlation_id_var
from shared.models import OutboxEvent
from shared.queue import NOTIFY_JOB, NOTIFY_QUEUE, enqueue_unique
from shared.tracing import TRACE_KEY, inject_job_context

log = logging.getLogger(__name__)
SWEEP_GRACE = timedelta(seconds=60)


def stage(
    session: AsyncSession,
    *,
    queue: str,
    job: str,
    payload: dict[str, Any],
    company_id: str | None,
    aggregate_id: str | None = None,
) -> OutboxEvent:
    """Add an outbox row to the session's transaction (flushed with the business rows).

    With tracing on, the payload keeps the trace context under `_trace`: the job continues
    this request's trace even when the sweeper sends it much later."""
    trace = inject_job_context()
    event = OutboxEvent(
        queue=queue,
        job_name=job,
        payload={**payload, TRACE_KEY: trace} if trace else payload,
        company_id=company_id,
        aggregate_id=aggregate_id,
        correlation_id=correlation_id_var.get(),
        available_at=utcnow(),
    )
    session.add(event)
    session.info.setdefault("outbox", []).append(event)
    return event


def stage_notification(
    session: AsyncSession,
    *,
    company_id: str,
    event_type: str,
    aggregate_id: str | None,
    payload: dict[str, Any],
) -> OutboxEvent:
    """Stage one `notify` job of `event_type` for the notifications worker (kept in order per
    `aggregate_id`: an appointment, a callback)."""
    return stage(
        session,
        queue=NOTIFY_QUEUE,
        job=NOTIFY_JOB,
        payload={"company_id": company_id, "event_type": event_type, **payload},
        company_id=company_id,
        aggregate_id=aggregate_id,
    )


def job_id(event_id: str) -> str:
    return f"outbox:{event_id}"


async def send(pool: ArqRedis, event: OutboxEvent) -> bool:
    """Enqueue one outbox row's job; False (logged) when Redis refuses: the sweeper retries."""
    try:
        await enqueue_unique(
            pool,
            event.job_name,
            event.id,
            job_id=job_id(event.id),
            queue=event.queue,
            trace=event.payload.get(TRACE_KEY) or {},
        )
        return True
    except Exception as exc:  # Redis down must never fail a committed booking
        log.warning("outbox enqueue failed; the sweeper will retry", extra={"error": str(exc)})
        return False


async def dispatch_staged(session: AsyncSession, pool: ArqRedis | None) -> int:
    """After a commit: enqueue the rows this session staged. Returns how many were sent."""
    events: list[OutboxEvent] = session.info.pop("outbox", [])
    if pool is None:
        return 0
    sent = 0
    for event in events:
        sent += await send(pool, event)
    return sent


async def due_for_sweep(
    session: AsyncSession, now: datetime, limit: int = 500
) -> list[OutboxEvent]:
    rows = await session.execute(
        select(OutboxEvent)
        .where(OutboxEvent.status == "pending", OutboxEvent.available_at <= now - SWEEP_GRACE)
        .order_by(OutboxEvent.available_at)
        .limit(limit)
    )
    return list(rows.scalars())


async def mark(session: AsyncSession, event_id: str, status: str, error: str | None = None) -> None:
    values: dict[str, Any] = {"status": status, "updated_at": utcnow()}
    if error is not None:
        values["last_error"] = error[:2000]
    await session.execute(
        update(OutboxEvent)
        .where(OutboxEvent.id == event_id)
        .values(attempts=OutboxEvent.attempts + 1, **values)
    )
