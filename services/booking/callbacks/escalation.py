"""The escalation cron: overdue callbacks climb their branch's escalation chain, level by level.

A callback is looked at from `next_escalation_at` on (its due time at creation). Level 1 is the
overdue escalation (`callback_overdue`, to the chain's first step when there is one); level L > 1
goes to step L of the chain once its `after_minutes` past the due time have passed
(`callback_escalated`). Each level is written once: the callback row is locked (skipped when
another worker holds it, on MariaDB) and re-checked, the level is the number of escalations so
far plus one, and a unique (callback, level) key refuses a duplicate that slips through anyway.
"""

from __future__ import annotations

import logging
from datetime import datetime

import sqlalchemy as sa
from arq.connections import ArqRedis
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.callbacks import service as callbacks
from services.booking.callbacks import states
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.jobs.outbox import dispatch_staged
from shared.models import CallbackEscalation, CallbackRequest

log = logging.getLogger(__name__)

OVERDUE_REASON = "overdue"
CHAIN_REASON = "sla_escalation"


def due_query(now: datetime, batch: int) -> sa.Select[str, str]:
    """Open callbacks the cron must look at, earliest first (index on next_escalation_at)."""
    return (
        sa.select(CallbackRequest.id, CallbackRequest.company_id)
        .where(
            CallbackRequest.next_escalation_at <= now,
            CallbackRequest.status.in_(states.OVERDUE_STATUSES),
        )
        .order_by(CallbackRequest.next_escalation_at)
        .limit(batch)
    )


async def due_callbacks(session: AsyncSession, now: datetime, batch: int) -> list[tuple[str, str]]:
    """(callback id, company id) of the callbacks due for a look; needs a SYSTEM session."""
    rows = await session.execute(due_query(now, batch))
    return [(callback_id, company_id) for callback_id, company_id in rows]


async def escalate_callback(
    session: AsyncSession, callback_id: str, now: datetime
) -> CallbackEscalation | None:
    """Write the level due for one callback at `now`, or only move its next look.

    The session is bound to the callback's company. None when nothing was due: the row is
    locked by another worker, no longer open, or was already handled meanwhile.
    """
    callback = await session.scalar(
        sa.select(CallbackRequest)
        .where(CallbackRequest.id == callback_id)
        # SQLite has no FOR UPDATE (write transactions take its lock up front).
        .with_for_update(skip_locked=True)
    )
    if callback is None or callback.next_escalation_at is None:
        return None
    if callback.status not in states.OVERDUE_STATUSES:
        callback.next_escalation_at = None
        return None
    if callback.next_escalation_at > now:
        return None
    level = await callbacks.escalation_count(session, callback.id) + 1
    chain = await callbacks.escalation_chain(session, callback.branch_id)
    when = states.escalation_time(callback.due_at, chain, level)
    if when is None or when > now:
        # Past the chain, or the chain changed since this time was set: look again when due.
        callback.next_escalation_at = when
        return None
    overdue = level == 1
    return await callbacks.record_escalation(
        session,
        callback,
        level=level,
        reason=OVERDUE_REASON if overdue else CHAIN_REASON,
        to=chain[level - 1].staff_id if level <= len(chain) else None,
        chain=chain,
        now=now,
        event_type="callback_overdue" if overdue else "callback_escalated",
    )


async def escalate_overdue(
    db: Database, *, now: datetime, batch: int = 100, pool: ArqRedis | None = None
) -> int:
    """Escalate what is due at `now` across all companies, each callback in its own
    transaction; staged notifications are enqueued on `pool` after each commit (the outbox
    sweeper sends them otherwise). Returns how many escalation rows were written."""
    async with db.transaction(SYSTEM, write=False) as session:
        due = await due_callbacks(session, now, batch)
    written = 0
    for callback_id, company_id in due:
        try:
            async with db.transaction(company_id) as session:
                escalation = await escalate_callback(session, callback_id, now)
        except IntegrityError:
            log.info("callback already escalated elsewhere", extra={"callback_id": callback_id})
            continue
        except Exception:  # one broken callback must not hold up the others
            log.exception("callback escalation failed", extra={"callback_id": callback_id})
            continue
        await dispatch_staged(session, pool)
        written += escalation is not None
    return written
