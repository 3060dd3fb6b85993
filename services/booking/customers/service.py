"""The customers API's use cases: search by phone or name, one customer with what is coming."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.appointments import queries as appointments
from services.booking.appointments.masking import phone_for
from services.booking.appointments.schemas import AppointmentOut
from services.booking.customers import queries
from services.booking.customers.queries import CustomerRow
from services.booking.customers.schemas import CustomerDetail, CustomerList, CustomerOut
from shared.db.types import utcnow
from shared.errors import InvalidInput
from shared.local_time import local_iso
from shared.models.appointment import LIVE_STATUSES
from shared.web.paging import MAX_LIMIT, decode_cursor, encode_cursor

UPCOMING_LIMIT = 50


def _out(row: CustomerRow, full_phone: bool) -> CustomerOut:
    return CustomerOut(
        id=row.id,
        name=row.name,
        phone=phone_for(row.phone, full=full_phone),
        email=row.email,
        created_at=local_iso(row.created_at, row.timezone),
    )


async def search(
    session: AsyncSession,
    *,
    phone: str | None,
    name: str | None,
    cursor: str | None = None,
    limit: int = 50,
    full_phone: bool = False,
) -> CustomerList:
    """One page of the customers found by phone and/or name; at least one is needed."""
    if phone is None and name is None:
        raise InvalidInput("Give `phone` or `name` (at least 2 characters).", field="phone")
    after = decode_cursor(cursor) if cursor is not None else None
    limit = max(1, min(limit, MAX_LIMIT))
    rows = await queries.search(session, phone=phone, name=name, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if more else None
    return CustomerList(
        items=[_out(row, full_phone) for row in rows],
        next_cursor=None if last is None else encode_cursor(last.created_at, last.id),
    )


async def detail(
    session: AsyncSession,
    customer_id: str,
    *,
    full_phone: bool = False,
    now: datetime | None = None,
) -> CustomerDetail:
    """The customer, its live appointments from `now` on and its no-show count, or 404."""
    row = await queries.customer(session, customer_id)
    upcoming = await appointments.appointments_with_names(
        session,
        customer_id=customer_id,
        start_from=now or utcnow(),
        statuses=LIVE_STATUSES,
        limit=UPCOMING_LIMIT,
    )
    return CustomerDetail(
        **_out(row, full_phone).model_dump(),
        upcoming=[
            AppointmentOut.of(a.appointment, a.timezone, a.names, full_phone=full_phone)
            for a in upcoming
        ],
        no_show_count=await queries.no_show_count(session, customer_id),
    )
