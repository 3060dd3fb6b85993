"""What the owner's page shows by name: today's appointments per staff member, the open and
overdue callbacks, and the names behind the ids the failed-booking view carries. Customers'
phone numbers leave this module masked."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from services.booking.appointments.masking import mask_phone
from services.booking.callbacks.states import OVERDUE_STATUSES
from shared.models import Appointment, Branch, CallbackRequest, Customer, Service, Staff

SHOWN_STATUSES = ("confirmed", "pending", "completed", "no_show")
MAX_APPOINTMENTS = 500
MAX_CALLBACKS = 100


@dataclass(frozen=True)
class Slot:
    starts_at: datetime
    ends_at: datetime
    service: str
    customer: str
    phone: str | None
    reference: str
    status: str
    sync_status: str


@dataclass
class StaffDay:
    name: str
    active: bool
    slots: list[Slot] = field(default_factory=list)


@dataclass
class BranchDay:
    name: str
    timezone: str
    staff: list[StaffDay] = field(default_factory=list)


@dataclass(frozen=True)
class Callback:
    customer: str
    phone: str
    reason: str
    priority: str
    requested_at: datetime
    due_at: datetime
    assignee: str | None
    timezone: str | None


@dataclass(frozen=True)
class Callbacks:
    open: list[Callback]
    overdue: list[Callback]
    open_count: int
    overdue_count: int


@dataclass(frozen=True)
class Names:
    """Names of the company's services and staff, and references of appointments, by id."""

    services: dict[str, str]
    staff: dict[str, str]
    references: dict[str, str]


def _utc(instant: datetime) -> datetime:
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant


def _masked(phone: str | None) -> str | None:
    return None if phone is None else mask_phone(phone)


async def day_schedule(session: AsyncSession, start: datetime, end: datetime) -> list[BranchDay]:
    """Every branch with its staff (active ones, and inactive ones that have appointments)
    and their appointments starting in [start, end), in time order."""
    rows = await session.execute(
        sa.select(
            Appointment.staff_id,
            Appointment.starts_at,
            Appointment.ends_at,
            Appointment.reference,
            Appointment.status,
            Appointment.sync_status,
            Service.name,
            Customer.name,
            Customer.phone,
        )
        .join(Service, Service.id == Appointment.service_id)
        .join(Customer, Customer.id == Appointment.customer_id)
        .where(
            Appointment.starts_at >= start,
            Appointment.starts_at < end,
            Appointment.status.in_(SHOWN_STATUSES),
        )
        .order_by(Appointment.starts_at, Appointment.id)
        .limit(MAX_APPOINTMENTS)
    )
    by_staff: dict[str, list[Slot]] = {}
    for staff_id, starts, ends, reference, status, sync, service, customer, phone in rows:
        by_staff.setdefault(staff_id, []).append(
            Slot(
                _utc(starts), _utc(ends), service, customer, _masked(phone), reference, status, sync
            )
        )
    members = await session.execute(
        sa.select(Staff.id, Staff.name, Staff.active, Branch.id, Branch.name, Branch.timezone)
        .join(Branch, Branch.id == Staff.branch_id)
        .order_by(Branch.name, Staff.name, Staff.id)
    )
    branches: dict[str, BranchDay] = {}
    for staff_id, name, active, branch_id, branch, tz in members:
        slots = by_staff.get(staff_id, [])
        if not active and not slots:
            continue
        day = branches.setdefault(branch_id, BranchDay(branch, tz))
        day.staff.append(StaffDay(name, bool(active), slots))
    return list(branches.values())


async def callbacks(session: AsyncSession, now: datetime) -> Callbacks:
    """Callbacks still waiting for a call (pending, assigned): overdue ones (due before
    `now`) and open ones, each soonest due first, with their counts."""
    waiting = CallbackRequest.status.in_(OVERDUE_STATUSES)
    overdue = CallbackRequest.due_at < now
    counts = (
        await session.execute(
            sa.select(
                sa.func.coalesce(sa.func.sum(sa.case((overdue, 1), else_=0)), 0),
                sa.func.count(),
            ).where(waiting)
        )
    ).one()
    assignee = aliased(Staff)
    rows = await session.execute(
        sa.select(
            CallbackRequest.customer_name,
            Customer.name,
            CallbackRequest.phone_number,
            CallbackRequest.reason,
            CallbackRequest.priority,
            CallbackRequest.created_at,
            CallbackRequest.due_at,
            assignee.name,
            Branch.timezone,
        )
        .outerjoin(Customer, Customer.id == CallbackRequest.customer_id)
        .outerjoin(assignee, assignee.id == CallbackRequest.assigned_to)
        .outerjoin(Branch, Branch.id == CallbackRequest.branch_id)
        .where(waiting)
        .order_by(CallbackRequest.due_at, CallbackRequest.id)
        .limit(MAX_CALLBACKS)
    )
    open_: list[Callback] = []
    late: list[Callback] = []
    for given, known, phone, reason, priority, created, due, staff, tz in rows:
        item = Callback(
            customer=known or given or "\u2013",
            phone=mask_phone(phone),
            reason=reason,
            priority=priority,
            requested_at=_utc(created),
            due_at=_utc(due),
            assignee=staff,
            timezone=tz,
        )
        (late if item.due_at < now else open_).append(item)
    overdue_count = int(counts[0])
    return Callbacks(open_, late, int(counts[1]) - overdue_count, overdue_count)


async def names(session: AsyncSession, appointment_ids: list[str]) -> Names:
    """Service and staff names of the company, and the references of `appointment_ids`."""
    services = dict((await session.execute(sa.select(Service.id, Service.name))).all())
    staff = dict((await session.execute(sa.select(Staff.id, Staff.name))).all())
    references: dict[str, str] = {}
    if appointment_ids:
        rows = await session.execute(
            sa.select(Appointment.id, Appointment.reference).where(
                Appointment.id.in_(appointment_ids)
            )
        )
        references = dict(rows.tuples().all())
    return Names(services, staff, references)
