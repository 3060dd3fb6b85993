"""Callback requests: a pure state machine plus the few queries and writes around it.

Open callbacks are `pending`, `assigned` or `contacted`; `resolved` and `expired` are final.
Every change stages its notification in the same transaction (outbox), and transitions lock
the row, so two operators acting at once cannot both win (or compute the same escalation level).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.types import utcnow
from shared.errors import Conflict, InvalidInput, NotFound
from shared.fields import normalize_phone
from shared.models import (
    Branch,
    CallbackEscalation,
    CallbackRequest,
    Customer,
    Service,
    Staff,
)
from shared.models.callback import CALLBACK_PRIORITIES
from shared.outbox import stage
from shared.queue import NOTIFY_QUEUE

DEFAULT_SLA_MINUTES = 120
NOTIFY_JOB = "notify"
OPEN_STATUSES = frozenset({"pending", "assigned", "contacted"})
OVERDUE_STATUSES = ("pending", "assigned")
# action -> (statuses it may start from, resulting status; None keeps the current one)
TRANSITIONS: dict[str, tuple[frozenset[str], str | None]] = {
    "assign": (frozenset({"pending", "assigned"}), "assigned"),
    "contacted": (frozenset({"pending", "assigned"}), "contacted"),
    "resolve": (OPEN_STATUSES, "resolved"),
    "escalate": (OPEN_STATUSES, None),
}
# Column widths: longer input is refused here, before MariaDB's strict mode would refuse it.
MAX_REASON, MAX_NAME, MAX_PREFERRED, MAX_CALL_ID, MAX_ESCALATION_REASON = 1000, 200, 200, 100, 100


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


def due_at(created: datetime, sla_minutes: int | None) -> datetime:
    """When a callback must have been handled: creation plus the SLA (default 120 minutes)."""
    return created + timedelta(minutes=DEFAULT_SLA_MINUTES if sla_minutes is None else sla_minutes)


def is_overdue(status: str, due: datetime, now: datetime) -> bool:
    return status in OVERDUE_STATUSES and due < now


# JSON -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallbackView:
    """A callback with what its JSON needs beyond the row."""

    callback: CallbackRequest
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


# Validation of references -----------------------------------------------------------------


def _text(value: str | None, field: str, max_length: int, *, required: bool = False) -> str | None:
    text = value.strip() if value is not None else None
    if not text:
        if required:
            raise InvalidInput(f"{field} must not be empty.", field=field)
        return None
    if len(text) > max_length:
        raise InvalidInput(f"{field} is longer than {max_length} characters.", field=field)
    return text


async def _exists(session: AsyncSession, model: Any, id_: str, field: str) -> Any:
    row = await session.scalar(sa.select(model).where(model.id == id_))
    if row is None:
        raise InvalidInput(f"Unknown {field.removesuffix('_id')}.", field=field)
    return row


async def _sla_minutes(session: AsyncSession, branch: Branch | None) -> int | None:
    if branch is not None:
        return branch.callback_sla_minutes
    # Without a branch: the company's first branch (the only one, for most tenants).
    return await session.scalar(
        sa.select(Branch.callback_sla_minutes)
        .order_by(Branch.active.desc(), Branch.created_at, Branch.id)
        .limit(1)
    )


def _notify(session: AsyncSession, cb: CallbackRequest, event_type: str, **extra: Any) -> None:
    stage(
        session,
        queue=NOTIFY_QUEUE,
        job=NOTIFY_JOB,
        payload={
            "event_type": event_type,
            "callback_id": cb.id,
            "company_id": cb.company_id,
            **extra,
        },
        company_id=cb.company_id,
        aggregate_id=cb.id,
    )


# Commands -------------------------------------------------------------------------------


async def create_callback(
    session: AsyncSession,
    *,
    company_id: str,
    phone_number: str,
    reason: str,
    customer_name: str | None = None,
    branch_id: str | None = None,
    call_id: str | None = None,
    preferred_time: str | None = None,
    now: datetime | None = None,
    service_id: str | None = None,
    staff_id: str | None = None,
    priority: str = "normal",
) -> CallbackRequest:
    """Record a callback request and stage its `callback_requested` notification.

    The session must be bound to `company_id`; references of another company are refused
    (InvalidInput naming the field), as are an invalid phone number and an empty reason.
    """
    now = now or utcnow()
    try:
        phone = normalize_phone(phone_number)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="phone_number") from exc
    reason_text = _text(reason, "reason", MAX_REASON, required=True)
    assert reason_text is not None
    if priority not in CALLBACK_PRIORITIES:
        raise InvalidInput(
            f"priority must be one of {', '.join(CALLBACK_PRIORITIES)}.", field="priority"
        )
    branch = await _exists(session, Branch, branch_id, "branch_id") if branch_id else None
    if service_id:
        service: Service = await _exists(session, Service, service_id, "service_id")
        if branch is not None and service.branch_id not in (None, branch.id):
            raise InvalidInput("This service is not offered at that branch.", field="service_id")
    if staff_id:
        staff: Staff = await _exists(session, Staff, staff_id, "staff_id")
        if branch is not None and staff.branch_id != branch.id:
            raise InvalidInput("This staff member works at another branch.", field="staff_id")
    customer = (
        await session.execute(sa.select(Customer.id, Customer.name).where(Customer.phone == phone))
    ).first()
    callback = CallbackRequest(
        company_id=company_id,
        branch_id=branch.id if branch is not None else None,
        customer_id=customer.id if customer is not None else None,
        service_id=service_id or None,
        staff_id=staff_id or None,
        call_id=_text(call_id, "call_id", MAX_CALL_ID),
        phone_number=phone,
        customer_name=_text(customer_name, "customer_name", MAX_NAME)
        or (customer.name if customer is not None else None),
        reason=reason_text,
        preferred_time=_text(preferred_time, "preferred_time", MAX_PREFERRED),
        priority=priority,
        status="pending",
        due_at=due_at(now, await _sla_minutes(session, branch)),
        created_at=now,
        updated_at=now,
    )
    session.add(callback)
    await session.flush()
    _notify(session, callback, "callback_requested")
    return callback


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
    staff: Staff = await _exists(session, Staff, staff_id, "staff_id")
    if not staff.active:
        raise InvalidInput("This staff member is inactive.", field="staff_id")
    callback.status = status
    callback.assigned_to = staff.id
    callback.assigned_at = now or utcnow()
    await session.flush()
    _notify(session, callback, "callback_assigned", assigned_to=staff.id)
    return callback


async def mark_contacted(
    session: AsyncSession, callback_id: str, notes: str | None = None, now: datetime | None = None
) -> CallbackRequest:
    callback = await _locked(session, callback_id)
    callback.status = next_status(callback.status, "contacted")
    callback.contacted_at = now or utcnow()
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
    if notes:
        callback.resolution_notes = notes
    await session.flush()
    return callback


async def escalate(
    session: AsyncSession,
    callback_id: str,
    reason: str,
    to: str | None = None,
    now: datetime | None = None,
) -> CallbackEscalation:
    """Record the next escalation level of an open callback; its status stays as it is."""
    callback = await _locked(session, callback_id)
    next_status(callback.status, "escalate")
    reason_text = _text(reason, "reason", MAX_ESCALATION_REASON, required=True)
    assert reason_text is not None
    if to:
        await _exists(session, Staff, to, "to")
    previous = await session.scalar(
        sa.select(sa.func.count())
        .select_from(CallbackEscalation)
        .where(CallbackEscalation.callback_request_id == callback.id)
    )
    escalation = CallbackEscalation(
        company_id=callback.company_id,
        callback_request_id=callback.id,
        escalation_reason=reason_text,
        escalated_from=callback.assigned_to,
        escalated_to=to or None,
        level=int(previous or 0) + 1,
        escalated_at=now or utcnow(),
    )
    session.add(escalation)
    callback.updated_at = now or utcnow()
    await session.flush()
    _notify(
        session,
        callback,
        "callback_escalated",
        escalation_id=escalation.id,
        level=escalation.level,
    )
    return escalation


# Queries --------------------------------------------------------------------------------


def _escalation_count() -> Any:
    return (
        sa.select(sa.func.count(CallbackEscalation.id))
        .where(CallbackEscalation.callback_request_id == CallbackRequest.id)
        .correlate(CallbackRequest)
        .scalar_subquery()
    )


def _view_query() -> sa.Select[Any]:
    return sa.select(CallbackRequest, Branch.timezone, _escalation_count()).outerjoin(
        Branch, Branch.id == CallbackRequest.branch_id
    )


async def get_view(session: AsyncSession, callback_id: str) -> CallbackView:
    """The callback with its branch timezone and escalation count, or 404."""
    row = (await session.execute(_view_query().where(CallbackRequest.id == callback_id))).first()
    if row is None:
        raise NotFound("No such callback request.")
    return CallbackView(row[0], row[1], int(row[2] or 0))


async def list_views(
    session: AsyncSession,
    *,
    status: str | None = None,
    overdue: bool = False,
    branch_id: str | None = None,
    now: datetime | None = None,
    limit: int = 200,
) -> list[CallbackView]:
    """Callbacks oldest due first; `overdue` keeps pending/assigned ones past their due time."""
    query = _view_query().order_by(CallbackRequest.due_at, CallbackRequest.id).limit(limit)
    if status is not None:
        query = query.where(CallbackRequest.status == status)
    if overdue:
        query = query.where(
            CallbackRequest.status.in_(OVERDUE_STATUSES),
            CallbackRequest.due_at < (now or utcnow()),
        )
    if branch_id is not None:
        query = query.where(CallbackRequest.branch_id == branch_id)
    rows = await session.execute(query)
    return [CallbackView(cb, tz, int(count or 0)) for cb, tz, count in rows]
