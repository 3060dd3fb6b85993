"""Retention (DSGVO): raw data is not kept past RETENTION_DAYS (default 90), across companies.

Older than the cutoff (`now - RETENTION_DAYS x 24 h`; a row exactly at the cutoff is kept):
- webhook events are deleted (their raw payloads are the data; dedupe needs only recent ones),
- call transcripts and analyses are cleared (the call row stays for statistics),
- API call logs are deleted.

Each batch is its own short transaction in the explicit system scope; a run repeats batches
until nothing is left, so a crash midway is finished by the next run (idempotent).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from shared.config import get_settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.db.types import utcnow
from shared.jobs.context import JobContext
from shared.models import ApiCallLog, Call, WebhookEvent

log = logging.getLogger(__name__)
BATCH = 1000
MAX_BATCHES = 1000  # per table and run: a huge backlog is worked off over several nights


@dataclass(frozen=True)
class RetentionResult:
    webhook_events_deleted: int
    transcripts_cleared: int
    api_call_logs_deleted: int


def cutoff(now: datetime, days: int) -> datetime:
    return now - timedelta(days=days)


async def _batches(db: Database, select_ids: Any, apply: Any) -> int:
    done = 0
    for _ in range(MAX_BATCHES):
        async with db.transaction(SYSTEM) as session:
            ids = list((await session.execute(select_ids.limit(BATCH))).scalars())
            if ids:
                await session.execute(apply(ids).execution_options(synchronize_session=False))
        done += len(ids)
        if len(ids) < BATCH:
            break
    return done


async def apply_retention(
    db: Database, *, days: int | None = None, now: datetime | None = None
) -> RetentionResult:
    """Delete or redact what is older than `days` (default RETENTION_DAYS) before `now`."""
    limit = cutoff(now or utcnow(), days or db.settings.retention_days)
    events = await _batches(
        db,
        sa.select(WebhookEvent.id).where(WebhookEvent.created_at < limit),
        lambda ids: sa.delete(WebhookEvent).where(WebhookEvent.id.in_(ids)),
    )
    transcripts = await _batches(
        db,
        sa.select(Call.id).where(
            Call.created_at < limit,
            sa.or_(Call.transcript.is_not(None), Call.analysis.is_not(None)),
        ),
        lambda ids: (
            sa.update(Call).where(Call.id.in_(ids)).values(transcript=None, analysis=sa.null())
        ),
    )
    logs = await _batches(
        db,
        sa.select(ApiCallLog.id).where(ApiCallLog.created_at < limit),
        lambda ids: sa.delete(ApiCallLog).where(ApiCallLog.id.in_(ids)),
    )
    result = RetentionResult(events, transcripts, logs)
    if events or transcripts or logs:
        log.info("retention applied", extra={"cutoff": limit.isoformat(), **vars(result)})
    return result


async def enforce_retention(ctx: JobContext) -> dict[str, int]:
    """The nightly cron of the webhooks worker (`unique`: one run per tick across replicas)."""
    db = ctx["db"]
    settings = ctx.get("settings") or get_settings()
    return vars(await apply_retention(db, days=settings.retention_days))
