"""Creating a callback request: what the agent, the REST API, the Cal.com sync and the Retell
call events all do when a caller must be called back.

A new callback is `pending`, due after the branch's SLA (default 120 minutes), and stages its
`callback_requested` notification in the same transaction (outbox). The transitions after it
(assign, contacted, resolve, escalate) are the booking service's
(services/booking/callbacks/service.py), built on the helpers here.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.types import utcnow
from shared.errors import InvalidInput
from shared.jobs.outbox import stage_notification
from shared.models import Branch, CallbackRequest, Customer, Service, Staff
from shared.models.callback import CALLBACK_PRIORITIES
from shared.phones import normalize_phone

DEFAULT_SLA_MINUTES = 120
# Column widths: longer input is refused here, before MariaDB's strict mode would refuse it.
MAX_REASON, MAX_NAME, MAX_PREFERRED, MAX_CALL_ID = 1000, 200, 200, 100


def due_at(created: datetime, sla_minutes: int | None) -> datetime:
    """When a callback must have been handled: creation plus the SLA (default 120 minutes)."""
    return created + timedelta(minutes=DEFAULT_SLA_MINUTES if sla_minutes is None else sla_minutes)


def text_field(
    value: str | None, field: str, max_length: int, *, required: bool = False
) -> str | None:
    """`value` stripped; None when empty (InvalidInput when `required`), InvalidInput naming
    `field` when longer than `max_length`."""
    text = value.strip() if value is not None else None
    if not text:
        if required:
            raise InvalidInput(f"{field} must not be empty.", field=field)
        return None
    if len(text) > max_length:
        raise InvalidInput(f"{field} is longer than {max_length} characters.", field=field)
    return text


async def existing(session: AsyncSession, model: Any, id_: str, field: str) -> Any:
    """The `model` row `id_` of the session's company, or InvalidInput naming `field`."""
    row = await session.scalar(sa.select(model).where(model.id == id_))
    if row is None:
        raise InvalidInput(f"Unknown {field.removesuffix('_id')}.", field=field)
    return row


def first_branch(column: Any) -> sa.Select[Any]:
    """`column` of the company's first branch (the only one, for most tenants): what a
    callback without branch goes by."""
    return sa.select(column).order_by(Branch.active.desc(), Branch.created_at, Branch.id).limit(1)


async def _sla_minutes(session: AsyncSession, branch: Branch | None) -> int | None:
    if branch is not None:
        return branch.callback_sla_minutes
    minutes: int | None = await session.scalar(first_branch(Branch.callback_sla_minutes))
    return minutes


def notify(session: AsyncSession, cb: CallbackRequest, event_type: str, **extra: Any) -> None:
    """Stage the notification `event_type` about callback `cb` (outbox, same transaction)."""
    stage_notification(
        session,
        company_id=cb.company_id,
        event_type=event_type,
        aggregate_id=cb.id,
        payload={"callback_id": cb.id, **extra},
    )


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
    reason_text = text_field(reason, "reason", MAX_REASON, required=True)
    assert reason_text is not None
    if priority not in CALLBACK_PRIORITIES:
        raise InvalidInput(
            f"priority must be one of {', '.join(CALLBACK_PRIORITIES)}.", field="priority"
        )
    branch = await existing(session, Branch, branch_id, "branch_id") if branch_id else None
    if service_id:
        service: Service = await existing(session, Service, service_id, "service_id")
        if branch is not None and service.branch_id not in (None, branch.id):
            raise InvalidInput("This service is not offered at that branch.", field="service_id")
    if staff_id:
        staff: Staff = await existing(session, Staff, staff_id, "staff_id")
        if branch is not None and staff.branch_id != branch.id:
            raise InvalidInput("This staff member works at another branch.", field="staff_id")
    customer = (
        await session.execute(sa.select(Customer.id, Customer.name).where(Customer.phone == phone))
    ).first()
    due = due_at(now, await _sla_minutes(session, branch))
    callback = CallbackRequest(
        company_id=company_id,
        branch_id=branch.id if branch is not None else None,
        customer_id=customer.id if customer is not None else None,
        service_id=service_id or None,
        staff_id=staff_id or None,
        call_id=text_field(call_id, "call_id", MAX_CALL_ID),
        phone_number=phone,
        customer_name=text_field(customer_name, "customer_name", MAX_NAME)
        or (customer.name if customer is not None else None),
        reason=reason_text,
        preferred_time=text_field(preferred_time, "preferred_time", MAX_PREFERRED),
        priority=priority,
        status="pending",
        due_at=due,
        next_escalation_at=due,
        created_at=now,
        updated_at=now,
    )
    session.add(callback)
    await session.flush()
    notify(session, callback, "callback_requested")
    return callback
