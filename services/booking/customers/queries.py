"""The customers' reads (scoped to the session's company by the tenancy hook)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.errors import NotFound
from shared.models import Appointment, Company, Customer

_COLUMNS = sa.select(
    Customer.id,
    Customer.name,
    Customer.phone,
    Customer.email,
    Customer.created_at,
    Company.timezone,
).join(Company, Company.id == Customer.company_id)


@dataclass(frozen=True)
class CustomerRow:
    id: str
    name: str
    phone: str | None
    email: str | None
    created_at: datetime
    timezone: str


async def search(
    session: AsyncSession,
    *,
    phone: str | None,
    name: str | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[CustomerRow]:
    """Customers (not erased) with this phone number and/or a name containing `name` (any
    case), oldest first, from after the position `after` (created_at, id) on."""
    query = _COLUMNS.where(Customer.erased_at.is_(None))
    if phone is not None:
        query = query.where(Customer.phone == phone)
    if name is not None:
        query = query.where(sa.func.lower(Customer.name).contains(name.lower(), autoescape=True))
    if after is not None:
        query = query.where(
            sa.or_(
                Customer.created_at > after[0],
                sa.and_(Customer.created_at == after[0], Customer.id > after[1]),
            )
        )
    query = query.order_by(Customer.created_at, Customer.id).limit(limit)
    return [CustomerRow(*row) for row in await session.execute(query)]


async def customer(session: AsyncSession, customer_id: str) -> CustomerRow:
    """One customer of the company, or 404."""
    row = (await session.execute(_COLUMNS.where(Customer.id == customer_id))).first()
    if row is None:
        raise NotFound("No such customer.")
    return CustomerRow(*row)


async def no_show_count(session: AsyncSession, customer_id: str) -> int:
    count = await session.scalar(
        sa.select(sa.func.count())
        .select_from(Appointment)
        .where(Appointment.customer_id == customer_id, Appointment.status == "no_show")
    )
    return int(count or 0)
