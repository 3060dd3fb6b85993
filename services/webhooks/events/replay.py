"""Operators' access to stored webhook events: list, read, replay (API and CLI share it).

Who sees what (`Scope`): a company's key sees its company's events; a platform key with
X-Company-ID sees that company's; a platform key WITHOUT X-Company-ID sees the unattributed
events (company_id NULL: Retell events whose number and agent belong to no company), which no
company may see; the CLI, run with database access, sees every event. Another scope's event
answers 404, as if it did not exist.

Replay puts a finished event (processed, ignored, failed) back to `pending`, clears its error
and enqueues it after the commit; one that is pending or processing is refused (409): it is
still on its way, and a second job would race the first. `attempts` keeps counting across
replays: it is the event's history, ARQ counts the tries of each job itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession

from services.webhooks.events.schemas import EventDetail, EventItem
from services.webhooks.ingest.service import enqueue
from shared.db.engine import Database, after_commit
from shared.db.tenancy import SYSTEM
from shared.db.types import utcnow
from shared.errors import Conflict, NotFound
from shared.local_time import local_iso
from shared.models import WebhookEvent
from shared.web.paging import decode_cursor, encode_cursor

REPLAYABLE = ("processed", "ignored", "failed")
MAX_LIMIT = 200


@dataclass(frozen=True)
class Scope:
    """Which events a caller may see: one company's, the unattributed ones, or all."""

    company_id: str | None
    everything: bool = False

    def condition(self) -> sa.ColumnElement[bool]:
        if self.everything:
            return sa.true()
        if self.company_id is None:
            return WebhookEvent.company_id.is_(None)
        return WebhookEvent.company_id == self.company_id


ALL = Scope(None, everything=True)
UNATTRIBUTED = Scope(None)


def iso(value: datetime | None) -> str | None:
    return local_iso(value, UTC) if value is not None else None


_ITEM_COLUMNS = (
    WebhookEvent.id,
    WebhookEvent.source,
    WebhookEvent.event_type,
    WebhookEvent.status,
    WebhookEvent.attempts,
    WebhookEvent.error_message,
    WebhookEvent.created_at,
    WebhookEvent.processed_at,
    WebhookEvent.correlation_id,
)


def _item(row: Any) -> EventItem:
    return EventItem(
        id=row.id,
        source=row.source,
        event_type=row.event_type,
        status=row.status,
        attempts=row.attempts,
        error_message=row.error_message,
        created_at=iso(row.created_at),
        processed_at=iso(row.processed_at),
        correlation_id=row.correlation_id,
    )


# --- listing (newest first, keyset pagination) --------------------------------------------------


@dataclass(frozen=True)
class EventPage:
    items: list[EventItem]
    next_cursor: str | None


async def list_events(
    session: AsyncSession,
    scope: Scope,
    *,
    status: str | None = None,
    source: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> EventPage:
    """One page of the scope's events, newest first; `next_cursor` continues after it."""
    query = sa.select(*_ITEM_COLUMNS).where(scope.condition())
    if status is not None:
        query = query.where(WebhookEvent.status == status)
    if source is not None:
        query = query.where(WebhookEvent.source == source)
    if cursor is not None:
        created_at, event_id = decode_cursor(cursor)
        query = query.where(
            sa.or_(
                WebhookEvent.created_at < created_at,
                sa.and_(WebhookEvent.created_at == created_at, WebhookEvent.id < event_id),
            )
        )
    limit = max(1, min(limit, MAX_LIMIT))
    query = query.order_by(WebhookEvent.created_at.desc(), WebhookEvent.id.desc()).limit(limit + 1)
    rows = list((await session.execute(query)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more else None
    return EventPage(items=[_item(row) for row in rows], next_cursor=next_cursor)


async def get_event(session: AsyncSession, scope: Scope, event_id: str) -> EventDetail:
    """One event with its payload (404 outside the scope)."""
    row = (
        await session.execute(
            sa.select(*_ITEM_COLUMNS, WebhookEvent.company_id, WebhookEvent.payload).where(
                WebhookEvent.id == event_id, scope.condition()
            )
        )
    ).first()
    if row is None:
        raise NotFound("No such webhook event.")
    return EventDetail(**dict(_item(row)), company_id=row.company_id, payload=row.payload)


# --- replay ------------------------------------------------------------------------------------


async def mark_for_replay(session: AsyncSession, scope: Scope, event_id: str) -> None:
    """Put a finished event back to pending (404 outside the scope, 409 while in flight).

    One conditional UPDATE, so two operators replaying at once enqueue it once.
    """
    result = await session.execute(
        sa.update(WebhookEvent)
        .where(
            WebhookEvent.id == event_id,
            scope.condition(),
            WebhookEvent.status.in_(REPLAYABLE),
        )
        .values(status="pending", error_message=None, processed_at=None, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) == 1:
        return
    status = await session.scalar(
        sa.select(WebhookEvent.status).where(WebhookEvent.id == event_id, scope.condition())
    )
    if status is None:
        raise NotFound("No such webhook event.")
    raise Conflict(
        f"The event is {status}: it is still being processed and cannot be replayed yet.",
        event_status=status,
    )


def replay_after_commit(session: AsyncSession, pool: ArqRedis | None, event_id: str) -> None:
    """Enqueue the replayed event once the request's transaction has committed."""

    async def _send() -> None:
        await enqueue(pool, event_id)

    after_commit(session, _send)


async def replay(db: Database, pool: ArqRedis | None, event_id: str, scope: Scope = ALL) -> bool:
    """Replay in a transaction of its own, then enqueue; True when the job reached Redis
    (False: the event is pending and the sweeper will enqueue it)."""
    async with db.transaction(SYSTEM) as session:
        await mark_for_replay(session, scope, event_id)
    return await enqueue(pool, event_id)
