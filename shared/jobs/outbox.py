"""The transactional outbox: jobs are staged as rows in the business transaction and sent to
their ARQ queue only after the commit. A sweeper re-enqueues rows still pending after a grace
period (a crash between commit and enqueue, Redis losing data), so nothing is lost; ARQ's
`_job_id` (the outbox id) and idempotent handlers make the repeat harmless. After a Redis
outage the booking worker re-enqueues every pending row at once (`resend_pending`, no grace):
whatever Redis held may be gone, and the database is the record (ADR 0018).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from arq.connections import ArqRedis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.tenancy import SYSTEM
from shared.db.types import utcnow
from shared.jobs.queue import NOTIFY_JOB, NOTIFY_QUEUE, enqueue_unique
from shared.models import OutboxEvent
from shared.observability.logging import correlation_id_var
from shared.observability.tracing import TRACE_KEY, inject_job_context

if TYPE_CHECKING:
    from shared.db.engine import Database

log = logging.getLogger(__name__)
SWEEP_GRACE = timedelta(seconds=60)
RESEND_LIMIT = 5000
RESEND_BATCH = 50


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


class EnqueueHealth:
    """Enqueue failures are logged once per outage (a warning, then debug lines), and the
    first success after them once: a Redis outage under load is not two log lines per
    booking. The rows stay pending either way; the sweepers send them."""

    def __init__(self, kind: str = "outbox") -> None:
        self.kind = kind
        self.failed_since: int = 0  # failures since the last success

    def failed(self, exc: BaseException, what: str) -> None:
        self.failed_since += 1
        if self.failed_since == 1:
            log.warning(
                "%s enqueue failed; the sweeper will retry (further failures are logged at "
                "debug level until one succeeds)",
                what,
                extra={"error": str(exc)},
            )
        else:
            log.debug("%s enqueue failed", what, extra={"error": str(exc)})

    def succeeded(self) -> None:
        if self.failed_since:
            log.warning("%s enqueue works again after %d failures", self.kind, self.failed_since)
            self.failed_since = 0


_health = EnqueueHealth()


async def send(pool: ArqRedis, event: OutboxEvent) -> bool:
    """Enqueue one outbox row's job; False (logged) when Redis refuses: the sweeper retries."""
    return await _enqueue(pool, event) is not None


async def _enqueue(pool: ArqRedis, event: OutboxEvent) -> bool | None:
    """True: enqueued; False: its job is queued or running already; None: Redis failed."""
    try:
        enqueued = await enqueue_unique(
            pool,
            event.job_name,
            event.id,
            job_id=job_id(event.id),
            queue=event.queue,
            trace=event.payload.get(TRACE_KEY) or {},
        )
    except Exception as exc:  # Redis down must never fail a committed booking
        _health.failed(exc, "outbox")
        return None
    _health.succeeded()
    return enqueued


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
    session: AsyncSession, now: datetime, limit: int = 500, grace: timedelta = SWEEP_GRACE
) -> list[OutboxEvent]:
    """Pending rows available for at least `grace` (their own enqueue had its chance)."""
    rows = await session.execute(
        select(OutboxEvent)
        .where(OutboxEvent.status == "pending", OutboxEvent.available_at <= now - grace)
        .order_by(OutboxEvent.available_at)
        .limit(limit)
    )
    return list(rows.scalars())


async def resend_pending(
    db: Database, pool: ArqRedis, *, now: datetime | None = None, limit: int = RESEND_LIMIT
) -> int:
    """Enqueue every pending row that is due, without the sweeper's grace: after Redis came
    back (perhaps empty) nothing it held can be trusted. A row whose job is still queued or
    running is refused by `enqueue_unique`, so only lost jobs are sent again. How many were."""
    now = now or utcnow()
    async with db.transaction(SYSTEM, write=False) as session:
        due = await due_for_sweep(session, now, limit=limit, grace=timedelta(0))
    sent = 0
    for start in range(0, len(due), RESEND_BATCH):
        batch = due[start : start + RESEND_BATCH]
        results = await asyncio.gather(*(_enqueue(pool, event) for event in batch))
        sent += sum(result is True for result in results)
    if due:
        log.info(
            "outbox rows re-enqueued after a Redis outage",
            extra={"pending": len(due), "enqueued": sent},
        )
    return sent


async def mark(session: AsyncSession, event_id: str, status: str, error: str | None = None) -> None:
    values: dict[str, Any] = {"status": status, "updated_at": utcnow()}
    if error is not None:
        values["last_error"] = error[:2000]
    await session.execute(
        update(OutboxEvent)
        .where(OutboxEvent.id == event_id)
        .values(attempts=OutboxEvent.attempts + 1, **values)
    )
