"""The queries that find one customer's rows and the rows that mention them, and the update
the erasure runs on them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.admin.customers.personal_data import Identity
from shared.models import Appointment, Call, CallbackRequest, Customer


@dataclass(frozen=True)
class OwnRows:
    """The ids of the rows that belong to the customer (not just mention them)."""

    appointments: list[str]
    calls: list[str]
    callbacks: list[str]
    retell_call_ids: list[str]  # a webhook event or log naming one of these is about them


async def ids(session: AsyncSession, stmt: Any) -> list[Any]:
    return list((await session.execute(stmt)).scalars())


async def own_rows(session: AsyncSession, customer: Customer) -> OwnRows:
    """Their appointments, calls (by customer or caller number) and callbacks (same)."""
    appointments = await ids(
        session, sa.select(Appointment.id).where(Appointment.customer_id == customer.id)
    )
    call_where = [Call.customer_id == customer.id]
    callback_where = [CallbackRequest.customer_id == customer.id]
    if customer.phone:
        call_where.append(Call.from_number == customer.phone)
        callback_where.append(CallbackRequest.phone_number == customer.phone)
    calls = await ids(session, sa.select(Call.id).where(sa.or_(*call_where)))
    callbacks = await ids(session, sa.select(CallbackRequest.id).where(sa.or_(*callback_where)))
    return OwnRows(
        appointments, calls, callbacks, await _retell_ids(session, calls, appointments, callbacks)
    )


async def _retell_ids(
    session: AsyncSession,
    call_ids: Sequence[str],
    appointment_ids: Sequence[str],
    callback_ids: Sequence[str],
) -> list[str]:
    found: set[str] = set()
    for stmt in (
        sa.select(Call.retell_call_id).where(Call.id.in_(call_ids)),
        sa.select(Appointment.call_id).where(Appointment.id.in_(appointment_ids)),
        sa.select(CallbackRequest.call_id).where(CallbackRequest.id.in_(callback_ids)),
    ):
        found.update(str(value) for value in await ids(session, stmt) if value)
    return sorted(found)


def mentioning(columns: Iterable[Any], who: Identity) -> Any:
    """SQL: any of `columns` contains any needle, in any case. A superset of the rows that
    mention them (`Identity.mentions` decides); grouped phone forms are found only in the
    customer's own rows."""
    clauses = [
        sa.func.lower(sa.cast(column, sa.Text)).contains(needle, autoescape=True)
        for column in columns
        for needle in sorted(who.needles)
    ]
    return sa.or_(*clauses) if clauses else sa.false()


async def update_rows(
    session: AsyncSession, model: Any, where: Sequence[Any], **values: Any
) -> int:
    """UPDATE the rows of `model` matching `where`; how many changed."""
    result = await session.execute(
        sa.update(model).where(*where).values(**values).execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
