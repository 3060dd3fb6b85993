"""The appointments' reads: one appointment, or a page of a filtered list, each with its
branch's zone and the names its answer shows (one statement each: joins, no per-row reads)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.appointments.schemas import Names
from shared.errors import NotFound
from shared.models import Appointment, Branch, Customer, Service, Staff


@dataclass(frozen=True)
class AppointmentRow:
    """An appointment with its branch's timezone and the names of its answer."""

    appointment: Appointment
    timezone: str
    names: Names


_WITH_NAMES = (
    sa.select(Appointment, Branch.timezone, Customer.name, Customer.phone, Service.name, Staff.name)
    .join(Branch, Branch.id == Appointment.branch_id)
    .join(Customer, Customer.id == Appointment.customer_id)
    .join(Service, Service.id == Appointment.service_id)
    .join(Staff, Staff.id == Appointment.staff_id)
)


def _row(row: sa.Row[Appointment, str, str, str | None, str, str]) -> AppointmentRow:
    appointment, timezone, customer, phone, service, staff = row
    return AppointmentRow(appointment, timezone, Names(customer, phone, service, staff))


async def appointment_with_zone(
    session: AsyncSession, appointment_id: str
) -> tuple[Appointment, str]:
    """The appointment and its branch's timezone, or 404."""
    found = await appointment_with_names(session, appointment_id)
    return found.appointment, found.timezone


async def appointment_with_names(session: AsyncSession, appointment_id: str) -> AppointmentRow:
    """The appointment with its zone and names, or 404."""
    row = (await session.execute(_WITH_NAMES.where(Appointment.id == appointment_id))).first()
    if row is None:
        raise NotFound("No such appointment.")
    return _row(row)


async def appointments_with_names(
    session: AsyncSession,
    *,
    phone: str | None = None,
    customer_id: str | None = None,
    start_from: datetime | None = None,
    start_to: datetime | None = None,
    statuses: Sequence[str] = (),
    after: tuple[datetime, str] | None = None,
    limit: int,
) -> list[AppointmentRow]:
    """Appointments matching every filter given, earliest first, from after the position
    `after` (start, id) on."""
    query = _WITH_NAMES.order_by(Appointment.starts_at, Appointment.id).limit(limit)
    if phone is not None:
        query = query.where(Customer.phone == phone)
    if customer_id is not None:
        query = query.where(Appointment.customer_id == customer_id)
    if start_from is not None:
        query = query.where(Appointment.starts_at >= start_from)
    if start_to is not None:
        query = query.where(Appointment.starts_at < start_to)
    if statuses:
        query = query.where(Appointment.status.in_(statuses))
    if after is not None:
        start, appointment_id = after
        query = query.where(
            sa.or_(
                Appointment.starts_at > start,
                sa.and_(Appointment.starts_at == start, Appointment.id > appointment_id),
            )
        )
    return [_row(row) for row in await session.execute(query)]
