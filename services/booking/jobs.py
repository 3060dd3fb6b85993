"""Jobs of the booking worker: Cal.com sync of a change, and the outbox sweeper."""

from __future__ import annotations

import logging
from typing import Any

from arq.connections import ArqRedis
from sqlalchemy import delete, select

from shared import outbox
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.db.types import utcnow
from shared.models import Appointment, Company, IdempotencyKey, OutboxEvent

log = logging.getLogger(__name__)


async def sync_appointment(ctx: dict[str, Any], outbox_id: str) -> str:
    """Bring one appointment change to Cal.com (idempotent; repeated delivery is harmless).

    Companies without the Cal.com integration keep the local calendar only: nothing to send.
    The Cal.com API client itself belongs to the webhooks/Cal.com work; until it exists a
    change of a company WITH the integration is recorded as failed, visible to operators.
    """
    db: Database = ctx["db"]
    async with db.transaction(SYSTEM) as session:
        event = await session.get(OutboxEvent, outbox_id)
        if event is None or event.status == "done":
            return "skipped"
        appointment = await session.get(Appointment, event.payload["appointment_id"])
        company = await session.get(Company, event.company_id) if event.company_id else None
        if appointment is None or company is None or not company.calcom_api_key:
            await outbox.mark(session, outbox_id, "done")
            return "local_only"
        await outbox.mark(session, outbox_id, "failed", "Cal.com sync is not available yet")
        return "failed"


async def sweep_outbox(ctx: dict[str, Any]) -> int:
    """Re-enqueue outbox rows still pending after the grace period (lost enqueue, lost Redis)."""
    db: Database = ctx["db"]
    pool: ArqRedis = ctx["redis"]
    async with db.transaction(SYSTEM, write=False) as session:
        due = await outbox.due_for_sweep(session, utcnow())
    sent = 0
    for event in due:
        sent += await outbox.send(pool, event)
    if sent:
        log.info("outbox sweeper re-enqueued %d jobs", sent)
    return sent


async def reap_idempotency_keys(ctx: dict[str, Any]) -> int:
    """Delete idempotency keys past their retention (48 h), in bounded batches."""
    db: Database = ctx["db"]
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
