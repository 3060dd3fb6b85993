"""The appointments' reads: one appointment, or a filtered list, each with its branch's zone."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.errors import NotFound
from shared.models import Appointment, Branch, Customer

_WITH_ZONE = sa.select(Appointment, Branch.timezone).join(
    Branch, Branch.id == Appointment.branch_id
)


async def appointment_with_zone(
    session: AsyncSession, appointment_id: str
) -> tuple[Appointment, str]:
    """The appointment and its branch's timezone, or 404."""
    row = (await session.execute(_WITH_ZONE.where(Appointment.id == appointment_id))).first()
    if row is None:
        raise NotFound("No such appointment.")
    return row[0], row[1]


async def appointments_with_zones(
    session: AsyncSession,
    *,
    phone: str | None,
    start_from: datetime | None,
    start_to: datetime | None,
    status: str | None,
    limit: int,
) -> Sequence[tuple[Appointment, str]]:
    """Appointments (and their branches' timezones) matching every filter given, earliest
    first."""
    query = _WITH_ZONE.order_by(Appointment.starts_at, Appointment.id).limit(limit)
    if phone is not None:
        query = query.join(Customer, Customer.id == Appointment.customer_id).where(
            Customer.phone == phone
        )
    if start_from is not None:
        query = query.where(Appointment.starts_at >= start_from)
    if start_to is not None:
        query = query.where(Appointment.starts_at < start_to)
    if status is not None:
        query = query.where(Appointment.status == status)
    rows = await session.execute(query)
    return [(appointment, tz) for appointment, tz in rows]
