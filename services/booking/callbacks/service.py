"""Callback requests after their creation: the use cases and queries around the state machine
(`states`). Creating one (`create_callback`, the due time) is shared.appointments.callbacks, as
the webhooks service creates them too.

Every change stages its notification in the same transaction (outbox), and transitions lock
the row, so two operators acting at once cannot both win (or compute the same escalation level).

Escalation levels follow the branch's `callback_escalation_chain`, steps counted from the
callback's due time: `next_escalation_at` says when the escalation cron must look at a callback
next (see escalation.py); one code path, `record_escalation`, writes a level, whether
an operator escalates by hand or the cron does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.callbacks.queries import list_query
from services.booking.callbacks.schemas import CallbackCreate, CallbackList, CallbackOut
from services.booking.callbacks.states import (
    MAX_ESCALATION_REASON,
    OVERDUE_STATUSES,
    EscalationStep,
    escalation_time,
    is_overdue,
    next_status,
    parse_chain,
)
from shared.appointments import callbacks as callback_core
from shared.appointments.callbacks import existing, first_branch, notify, text_field
from shared.db.scoped import execute
from shared.db.types import utcnow
from shared.errors import InvalidInput, NotFound
from shared.local_time import local_iso
from shared.models import Branch, CallbackEscalation, CallbackRequest, Staff
from shared.models.callback import CALLBACK_STATUSES
from shared.web.paging import decode_cursor, encode_cursor

# Answers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallbackView:
    """A callback with what its JSON needs beyond the row.

    `callback` is the model object or, in lists, a row of its columns (same attribute names).
    """

    callback: CallbackRequest | Any
    timezone: str | None
    escalations: int


def callback_out(view: CallbackView, now: datetime | None = None) -> CallbackOut:
    """The callback as answered; instants in the branch's offset (UTC without a branch)."""
    cb = view.callback
    tz = view.timezone or "UTC"
    details = cb.details or {}
    return CallbackOut(
        id=cb.id,
        company_id=cb.company_id,
        branch_id=cb.branch_id,
        customer_id=cb.customer_id,
        service_id=cb.service_id,
        staff_id=cb.staff_id,
        assigned_to=cb.assigned_to,
        call_id=cb.call_id,
        phone_number=cb.phone_number,
        customer_name=cb.customer_name,
        reason=cb.reason,
        preferred_time=cb.preferred_time,
        priority=cb.priority,
        status=cb.status,
        due_at=local_iso(cb.due_at, tz),
        overdue=is_overdue(cb.status, cb.due_at, now or utcnow()),
        assigned_at=_local(cb.assigned_at, tz),
        contacted_at=_local(cb.contacted_at, tz),
        resolved_at=_local(cb.resolved_at, tz),
        contact_notes=details.get("contact_notes"),
        resolution_notes=cb.resolution_notes,
        escalations=view.escalations,
        created_at=local_iso(cb.created_at, tz),
    )


def _local(instant: datetime | None, tz: str) -> str | None:
    return None if instant is None else local_iso(instant, tz)


# Escalation chain -------------------------------------------------------------------------


async def escalation_chain(
    session: AsyncSession, branch_id: str | None
) -> tuple[EscalationStep, ...]:
    """The escalation chain of the branch, or of the company's first branch without one."""
    if branch_id is None:
        query = first_branch(Branch.callback_escalation_chain)
    else:
        query = sa.select(Branch.callback_escalation_chain).where(Branch.id == branch_id)
    return parse_chain(await session.scalar(query))


# Commands -------------------------------------------------------------------------------


async def _locked(session: AsyncSession, callback_id: str) -> CallbackRequest:
    callback = await session.scalar(
        sa.select(CallbackRequest).where(CallbackRequest.id == callback_id).with_for_update()
    )
    if callback is None:
        raise NotFound("No such callback request.")
    return callback


async def assign(
    session: AsyncSession, callback_id: str, staff_id: str, now: datetime | None = None
) -> CallbackRequest:
    """Hand a pending or assigned callback to a (new) active staff member."""
    callback = await _locked(session, callback_id)
    status = next_status(callback.status, "assign")
    staff: Staff = await existing(session, Staff, staff_id, "staff_id")
    if not staff.active:
        raise InvalidInput("This staff member is inactive.", field="staff_id")
    callback.status = status
    callback.assigned_to = staff.id
    callback.assigned_at = now or utcnow()
    await session.flush()
    notify(session, callback, "callback_assigned", assigned_to=staff.id)
    return callback


async def mark_contacted(
    session: AsyncSession, callback_id: str, notes: str | None = None, now: datetime | None = None
) -> CallbackRequest:
    callback = await _locked(session, callback_id)
    callback.status = next_status(callback.status, "contacted")
    callback.contacted_at = now or utcnow()
    callback.next_escalation_at = None
    if notes:
        callback.details = {**(callback.details or {}), "contact_notes": notes}
    await session.flush()
    return callback


async def resolve(
    session: AsyncSession, callback_id: str, notes: str | None = None, now: datetime | None = None
) -> CallbackRequest:
    callback = await _locked(session, callback_id)
    callback.status = next_status(callback.status, "resolve")
    callback.resolved_at = now or utcnow()
    callback.next_escalation_at = None
    if notes:
        callback.resolution_notes = notes
    await session.flush()
    return callback


async def escalation_count(session: AsyncSession, callback_id: str) -> int:
    count = await session.scalar(
        sa.select(sa.func.count())
        .select_from(CallbackEscalation)
        .where(CallbackEscalation.callback_request_id == callback_id)
    )
    return int(count or 0)


async def record_escalation(
    session: AsyncSession,
    callback: CallbackRequest,
    *,
    level: int,
    reason: str,
    to: str | None,
    chain: Sequence[EscalationStep],
    now: datetime,
    event_type: str = "callback_escalated",
) -> CallbackEscalation:
    """Write escalation `level` of a locked callback, schedule the next level's look and stage
    the notification. A level written concurrently fails the flush (unique per level)."""
    escalation = CallbackEscalation(
        company_id=callback.company_id,
        callback_request_id=callback.id,
        escalation_reason=reason,
        escalated_from=callback.assigned_to,
        escalated_to=to,
        level=level,
        escalated_at=now,
    )
    session.add(escalation)
    callback.updated_at = now
    callback.escalation_level = max(callback.escalation_level or 0, level)
    callback.next_escalation_at = (
        escalation_time(callback.due_at, chain, level + 1)
        if callback.status in OVERDUE_STATUSES
        else None
    )
    await session.flush()
    notify(
        session,
        callback,
        event_type,
        escalation_id=escalation.id,
        level=level,
        escalated_to=to,
    )
    return escalation


async def escalate(
    session: AsyncSession,
    callback_id: str,
    reason: str,
    to: str | None = None,
    now: datetime | None = None,
) -> CallbackEscalation:
    """Record the next escalation level of an open callback; its status stays as it is.

    The escalation cron goes on from the level after this one, at that level's time."""
    callback = await _locked(session, callback_id)
    next_status(callback.status, "escalate")
    reason_text = text_field(reason, "reason", MAX_ESCALATION_REASON, required=True)
    assert reason_text is not None
    if to:
        await existing(session, Staff, to, "to")
    return await record_escalation(
        session,
        callback,
        level=await escalation_count(session, callback.id) + 1,
        reason=reason_text,
        to=to or None,
        chain=await escalation_chain(session, callback.branch_id),
        now=now or utcnow(),
    )


# Queries --------------------------------------------------------------------------------


async def get_view(session: AsyncSession, callback_id: str) -> CallbackView:
    """The callback with its branch timezone and escalation level, or 404 (the same figure
    the list shows: `escalation_level`, kept by `record_escalation`)."""
    row = (
        await session.execute(
            sa.select(CallbackRequest, Branch.timezone)
            .outerjoin(Branch, Branch.id == CallbackRequest.branch_id)
            .where(CallbackRequest.id == callback_id)
        )
    ).first()
    if row is None:
        raise NotFound("No such callback request.")
    return CallbackView(row[0], row[1], int(row[0].escalation_level or 0))


_NO_END = datetime(9999, 1, 1, tzinfo=UTC)


async def list_views(
    session: AsyncSession,
    *,
    status: str | None = None,
    overdue: bool = False,
    branch_id: str | None = None,
    now: datetime | None = None,
    limit: int = 200,
    after: tuple[datetime, str] | None = None,
) -> list[CallbackView]:
    """Callbacks oldest due first; `overdue` keeps pending/assigned ones past their due time.

    The rows are read as plain column tuples (attribute access like the model's), not ORM
    objects: a page is 200 rows, and building entities was most of its cost."""
    statuses: tuple[str, ...] = CALLBACK_STATUSES if status is None else (status,)
    if overdue:
        statuses = tuple(s for s in statuses if s in OVERDUE_STATUSES)
    query = list_query(
        statuses, by_branch=branch_id is not None, paged=after is not None, limit=limit
    )
    params: dict[str, Any] = {
        "before": (now or utcnow()) if overdue else _NO_END,
        "branch_id": branch_id,
        "after_due": after[0] if after else None,
        "after_id": after[1] if after else None,
    }
    # Core on the session's connection, scoped to its company: no ORM result machinery.
    rows = (await execute(session, query, params)).all()
    return [CallbackView(row, row.timezone, int(row.escalation_level or 0)) for row in rows]


async def answer(session: AsyncSession, callback_id: str) -> CallbackOut:
    """The callback as the API answers it, or 404."""
    return callback_out(await get_view(session, callback_id))


async def create(session: AsyncSession, company_id: str, body: CallbackCreate) -> CallbackOut:
    """Record a callback request (due after the branch's SLA) and answer it."""
    callback = await callback_core.create_callback(
        session,
        company_id=company_id,
        phone_number=body.phone_number,
        reason=body.reason,
        customer_name=body.customer_name,
        branch_id=body.branch_id,
        service_id=body.service_id,
        staff_id=body.staff_id,
        call_id=body.call_id,
        preferred_time=body.preferred_time,
        priority=body.priority,
    )
    return await answer(session, callback.id)


async def listing(
    session: AsyncSession,
    *,
    status: str | None,
    overdue: bool,
    branch_id: str | None,
    now: datetime,
    limit: int,
    cursor: str | None = None,
) -> CallbackList:
    """One page of callbacks, oldest due first, as the API lists them; `next_cursor`
    continues it."""
    after = decode_cursor(cursor) if cursor is not None else None
    views = await list_views(
        session,
        status=status,
        overdue=overdue,
        branch_id=branch_id,
        now=now,
        limit=limit + 1,
        after=after,
    )
    more = len(views) > limit
    views = views[:limit]
    last = views[-1].callback if more else None
    return CallbackList(
        items=[callback_out(view, now) for view in views],
        next_cursor=None if last is None else encode_cursor(last.due_at, last.id),
    )
