"""The agent's reads: the names a caller may say (one statement), the inbound greeting, and
the appointments a caller may act on."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.agent.inputs import Catalog, Named
from shared.db.scoped import execute, scoped
from shared.db.tenancy import PER_CALL, current_tenant
from shared.models import LIVE_STATUSES, Appointment, Branch, Company, Customer, Service, Staff


@functools.cache
def _catalog_statement() -> sa.CompoundSelect[str, str, str, str]:
    """(kind, id, name, extra) of the company and its active services, branches and staff,
    in name order: built once, scoped per call."""
    text = sa.String(64)
    parts = [
        sa.select(sa.literal("company").label("kind"), Company.id, Company.name, Company.timezone),
        sa.select(sa.literal("service"), Service.id, Service.name, sa.cast(sa.null(), text)).where(
            Service.active.is_(True)
        ),
        sa.select(sa.literal("branch"), Branch.id, Branch.name, Branch.timezone).where(
            Branch.active.is_(True)
        ),
        sa.select(sa.literal("staff"), Staff.id, Staff.name, Staff.branch_id).where(
            Staff.active.is_(True)
        ),
    ]
    return scoped(sa.union_all(*parts).order_by(sa.text("kind"), sa.text("name")), PER_CALL)


async def load_catalog(session: AsyncSession) -> Catalog:
    """Everything a caller may name, in one statement."""
    company_id = current_tenant(session)
    rows = await execute(session, _catalog_statement(), company_id=company_id)
    timezone = "Europe/Berlin"
    services: list[Named] = []
    branches: list[Named] = []
    staff: list[Named] = []
    for kind, id_, name, extra in rows:
        if kind == "company":
            timezone = extra
        elif kind == "service":
            services.append(Named(id_, name))
        elif kind == "branch":
            branches.append(Named(id_, name, timezone=extra))
        else:
            staff.append(Named(id_, name, branch_id=extra))
    return Catalog(timezone, services, branches, staff)


async def staff_names(session: AsyncSession, ids: set[str]) -> dict[str, str]:
    """The names of the staff members `ids`."""
    if not ids:
        return {}
    rows = await session.execute(sa.select(Staff.id, Staff.name).where(Staff.id.in_(ids)))
    return {staff_id: name for staff_id, name in rows}


@dataclass(frozen=True)
class Greeting:
    """What the inbound webhook knows of a caller (None: unknown)."""

    customer_name: str | None
    next_start: datetime | None = None
    next_service: str | None = None


async def branch_of(session: AsyncSession, branch_id: str) -> Branch | None:
    return await session.get(Branch, branch_id)


async def caller_greeting(session: AsyncSession, phone: str, now: datetime) -> Greeting:
    """The customer behind `phone` and their next live appointment."""
    customer = await session.scalar(sa.select(Customer).where(Customer.phone == phone))
    if customer is None:
        return Greeting(None)
    upcoming = (
        await session.execute(
            sa.select(Appointment.starts_at, Service.name)
            .join(Service, Service.id == Appointment.service_id)
            .where(
                Appointment.customer_id == customer.id,
                Appointment.status.in_(LIVE_STATUSES),
                Appointment.starts_at >= now,
            )
            .order_by(Appointment.starts_at)
            .limit(1)
        )
    ).first()
    if upcoming is None:
        return Greeting(customer.name)
    return Greeting(customer.name, upcoming[0], upcoming[1])


AppointmentRow = tuple[Appointment, str, str]  # the appointment, its branch's zone, the customer


def _appointments() -> sa.Select[Appointment, str, str]:
    return (
        sa.select(Appointment, Branch.timezone, Customer.name)
        .join(Customer, Customer.id == Appointment.customer_id)
        .join(Branch, Branch.id == Appointment.branch_id)
        .order_by(Appointment.starts_at)
    )


async def appointment_by_reference(session: AsyncSession, reference: str) -> AppointmentRow | None:
    """The appointment with this booking reference, any status."""
    row = (await session.execute(_appointments().where(Appointment.reference == reference))).first()
    return None if row is None else (row[0], row[1], row[2])


async def callers_live_appointments(
    session: AsyncSession,
    caller: str,
    *,
    reference: str | None = None,
    appointment_id: str | None = None,
) -> list[AppointmentRow]:
    """The caller's live appointments in start order, narrowed to a reference or an id."""
    query = _appointments().where(Customer.phone == caller, Appointment.status.in_(LIVE_STATUSES))
    if reference is not None:
        query = query.where(Appointment.reference == reference)
    if appointment_id is not None:
        query = query.where(Appointment.id == appointment_id)
    return [(r[0], r[1], r[2]) for r in (await session.execute(query)).all()]


async def upcoming_appointments(
    session: AsyncSession,
    now: datetime,
    *,
    appointment_id: str | None = None,
    caller: str | None = None,
    reference: str | None = None,
    limit: int = 20,
) -> list[tuple[Appointment, str, str, str]]:
    """(appointment, zone, service name, staff name) from `now` on: one appointment by id, or
    the caller's (narrowed to a reference), at most `limit`."""
    query = (
        _appointments()
        .add_columns(Service.name, Staff.name)
        .join(Service, Service.id == Appointment.service_id)
        .join(Staff, Staff.id == Appointment.staff_id)
        .where(Appointment.starts_at >= now)
    )
    if appointment_id is not None:
        query = query.where(Appointment.id == appointment_id)
    if caller is not None:
        query = query.where(Customer.phone == caller)
    if reference is not None:
        query = query.where(Appointment.reference == reference)
    rows = (await session.execute(query.limit(limit))).all()
    return [(a, tz, service, staff) for a, tz, _customer, service, staff in rows]
