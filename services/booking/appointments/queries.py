"""Read side of the booking service: availability and appointment lookups."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.appointments.booking import free_slots, resolve_branches
from services.booking.appointments.serialize import appointment_json, local_iso
from services.booking.scheduling.rules import rules_for
from shared.db.types import utcnow
from shared.errors import InvalidInput, NotFound
from shared.models import Appointment, Branch, Company, Customer, Service

# Built once: constructing and keying the statement per call cost more than running it.
_SERVICE_AND_COMPANY = (
    sa.select(Service, Company)
    .join(Company, Company.id == Service.company_id)
    .where(Service.id == sa.bindparam("service_id"))
)


async def availability(
    session: AsyncSession,
    *,
    service_id: str,
    first_date: date,
    days: int,
    branch_id: str | None = None,
    staff_id: str | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    now = now or utcnow()
    row = (await session.execute(_SERVICE_AND_COMPANY, {"service_id": service_id})).first()
    if row is None or not row[0].active:
        raise InvalidInput("Unknown service.", field="service_id")
    service, company = row
    result: list[tuple[datetime, dict[str, Any]]] = []
    for branch in await resolve_branches(session, service, branch_id):
        slots = await free_slots(
            session,
            service=service,
            branch=branch,
            rules=rules_for(company, branch),
            first_date=first_date,
            days=days,
            now=now,
            staff_id=staff_id,
        )
        for slot in slots:
            result.append(
                (
                    slot.start,
                    {
                        "start": local_iso(slot.start, branch.timezone),
                        "end": local_iso(slot.end, branch.timezone),
                        "staff_id": slot.staff_id,
                        "branch_id": branch.id,
                    },
                )
            )
    result.sort(key=lambda item: item[0])
    return [item[1] for item in result]


async def get_appointment(session: AsyncSession, appointment_id: str) -> tuple[Appointment, str]:
    """The appointment and its branch's timezone, or 404."""
    row = (
        await session.execute(
            sa.select(Appointment, Branch.timezone)
            .join(Branch, Branch.id == Appointment.branch_id)
            .where(Appointment.id == appointment_id)
        )
    ).first()
    if row is None:
        raise NotFound("No such appointment.")
    return row[0], row[1]


async def list_appointments(
    session: AsyncSession,
    *,
    phone: str | None = None,
    start_from: datetime | None = None,
    start_to: datetime | None = None,
    status: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    query = (
        sa.select(Appointment, Branch.timezone)
        .join(Branch, Branch.id == Appointment.branch_id)
        .order_by(Appointment.starts_at, Appointment.id)
        .limit(limit)
    )
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
    return [appointment_json(appointment, tz) for appointment, tz in rows]
