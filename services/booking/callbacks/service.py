"""Callback requests after their creation: a pure state machine plus the few queries and writes
around it. Creating one (`create_callback`, the due time) is shared.appointments.callbacks, as
the webhooks service creates them too.

Open callbacks are `pending`, `assigned` or `contacted`; `resolved` and `expired` are final.
Every change stages its notification in the same transaction (outbox), and transitions lock
the row, so two operators acting at once cannot both win (or compute the same escalation level).

Escalation levels follow the branch's `callback_escalation_chain`, steps counted from the
callback's due time: `next_escalation_at` says when the escalation cron must look at a callback
next (see escalation.py); one code path, `record_escalation`, writes a level, whether
an operator escalates by hand or the cron does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.appointments.callbacks import existing, first_branch, notify, text_field
from shared.db.scoped import execute, scoped
from shared.db.tenancy import session_scope
from shared.db.types import utcnow
from shared.errors import Conflict, InvalidInput, NotFound
from shared.models import Branch, CallbackEscalation, CallbackRequest, Staff
from shared.models.callback import CALLBACK_STATUSES

log = logging.getLogger(__name__)

OPEN_STATUSES = frozenset({"pending", "assigned", "contacted"})
OVERDUE_STATUSES = ("pending", "assigned")
# action -> (statuses it may start from, resulting status; None keeps the current one)
TRANSITIONS: dict[str, tuple[frozenset[str], str | None]] = {
    "assign": (frozenset({"pending", "assigned"}), "assigned"),
    "contacted": (frozenset({"pending", "assigned"}), "contacted"),
    "resolve": (OPEN_STATUSES, "resolved"),
    "escalate": (OPEN_STATUSES, None),
}
# Column width: a longer reason is refused here, before MariaDB's strict mode would refuse it.
MAX_ESCALATION_REASON = 100


class InvalidTransition(Conflict):
    code, title = "invalid_transition", "Invalid transition"


# Pure core ------------------------------------------------------------------------------


def next_status(current: str, action: str) -> str:
    """The status after `action`, or InvalidTransition naming the current status."""
    allowed_from, target = TRANSITIONS[action]
    if current not in allowed_from:
        raise InvalidTransition(
            f"Cannot {action} a callback that is {current}.",
            current_status=current,
            action=action,
        )
    return current if target is None else target


def is_overdue(status: str, due: datetime, now: datetime) -> bool:
    return status in OVERDUE_STATUSES and due < now


@dataclass(frozen=True)
class EscalationStep:
    """One level of a branch's escalation chain: who, and how long after the due time."""

    staff_id: str
    after_minutes: int


def parse_chain(raw: Any) -> tuple[EscalationStep, ...]:
    """The stored chain as steps; none when unset. A malformed chain (the admin API refuses
    one, so only a manual edit makes it) counts as none, logged: level 1 still happens."""
    if not raw:
        return ()
    try:
        return tuple(
            EscalationStep(str(step["staff_id"]), int(step["after_minutes"])) for step in raw
        )
    except (KeyError, TypeError, ValueError):
        log.warning("ignoring a malformed callback escalation chain", extra={"chain": raw})
        return ()


def escalation_time(due: datetime, chain: Sequence[EscalationStep], level: int) -> datetime | None:
    """When escalation `level` (1-based) falls due: due time plus its step's minutes. Level 1
    (overdue) exists without a chain too, at the due time; past the chain there is none."""
    if level <= len(chain):
        return due + timedelta(minutes=chain[level - 1].after_minutes)
    return due if level == 1 else None


# JSON -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallbackView:
    """A callback with what its JSON needs beyond the row.

    `callback` is the model object or, in lists, a row of its columns (same attribute names).
    """

    callback: CallbackRequest | Any
    timezone: str | None
    escalations: int


def _iso(instant: datetime | None, zone: ZoneInfo) -> str | None:
    return None if instant is None else instant.astimezone(zone).isoformat()


def callback_json(view: CallbackView, now: datetime | None = None) -> dict[str, Any]:
    """Callback JSON; instants in the branch's offset (UTC for a callback without branch)."""
    cb = view.callback
    zone = ZoneInfo(view.timezone) if view.timezone else ZoneInfo("UTC")
    details = cb.details or {}
    return {
        "id": cb.id,
        "company_id": cb.company_id,
        "branch_id": cb.branch_id,
        "customer_id": cb.customer_id,
        "service_id": cb.service_id,
        "staff_id": cb.staff_id,
        "assigned_to": cb.assigned_to,
        "call_id": cb.call_id,
        "phone_number": cb.phone_number,
        "customer_name": cb.customer_name,
        "reason": cb.reason,
        "preferred_time": cb.preferred_time,
        "priority": cb.priority,
        "status": cb.status,
        "due_at": _iso(cb.due_at, zone),
        "overdue": is_overdue(cb.status, cb.due_at, now or utcnow()),
        "assigned_at": _iso(cb.assigned_at, zone),
        "contacted_at": _iso(cb.contacted_at, zone),
        "resolved_at": _iso(cb.resolved_at, zone),
        "contact_notes": details.get("contact_notes"),
        "resolution_notes": cb.resolution_notes,
        "escalations": view.escalations,
        "created_at": _iso(cb.created_at, zone),
    }


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


# The list's columns: the callback's columns that `callback_json` shows (as attributes;
# `escalation_level` is its escalation count) and its branch's zone.
_NOT_LISTED: Final = frozenset({"updated_at", "expired_at", "next_escalation_at"})
_LIST_COLUMNS: Final = sa.select(
    *(
        getattr(CallbackRequest, attr.key)
        for attr in sa.inspect(CallbackRequest).column_attrs
        if attr.key not in _NOT_LISTED
    ),
    Branch.timezone.label("timezone"),
).outerjoin(Branch, Branch.id == CallbackRequest.branch_id)


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


def list_query(
    *,
    status: str | None = None,
    overdue: bool = False,
    branch_id: str | None = None,
    now: datetime | None = None,
    limit: int = 200,
) -> sa.Select[Any]:
    """The list of `list_views`, oldest due first, without sorting every matching row.

    Not yet scoped: run it through the ORM session, or `scoped` (shared.db.scoped) on a
    Core connection.

    The index (company_id, status, due_at) (InnoDB appends the primary key) yields each
    status's callbacks already in (due_at, id) order: one range read per status, cut at
    `limit`, gives at most statuses x limit candidates, and only those are merged and sorted.
    A single range over several statuses would sort all its rows (every overdue callback).
    """
    statuses: tuple[str, ...] = CALLBACK_STATUSES if status is None else (status,)
    if overdue:
        statuses = tuple(s for s in statuses if s in OVERDUE_STATUSES)
    parts: list[sa.Select[Any]] = []
    for each in statuses:
        part = sa.select(CallbackRequest.id, CallbackRequest.due_at).where(
            CallbackRequest.status == each
        )
        if overdue:
            part = part.where(CallbackRequest.due_at < (now or utcnow()))
        if branch_id is not None:
            part = part.where(CallbackRequest.branch_id == branch_id)
        ordered = part.order_by(CallbackRequest.due_at, CallbackRequest.id).limit(limit).subquery()
        # A derived table each: SQLite allows no LIMIT on a UNION member itself.
        parts.append(sa.select(ordered.c.id, ordered.c.due_at))
    if not parts:
        return _LIST_COLUMNS.where(sa.false())
    page = (parts[0] if len(parts) == 1 else sa.union_all(*parts)).subquery("page")
    return (
        _LIST_COLUMNS.join(page, page.c.id == CallbackRequest.id)
        .order_by(page.c.due_at, page.c.id)
        .limit(limit)
    )


async def list_views(
    session: AsyncSession,
    *,
    status: str | None = None,
    overdue: bool = False,
    branch_id: str | None = None,
    now: datetime | None = None,
    limit: int = 200,
) -> list[CallbackView]:
    """Callbacks oldest due first; `overdue` keeps pending/assigned ones past their due time.

    The rows are read as plain column tuples (attribute access like the model's), not ORM
    objects: a page is 200 rows, and building entities was most of its cost."""
    query = list_query(
        status=status,
        overdue=overdue,
        branch_id=branch_id,
        now=now,
        limit=limit,
    )
    # Core on the session's connection, scoped to its company: no ORM result machinery.
    rows = (await execute(session, scoped(query, session_scope(session)))).all()
    return [CallbackView(row, row.timezone, int(row.escalation_level or 0)) for row in rows]
