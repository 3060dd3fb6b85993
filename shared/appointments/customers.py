"""Customers are identified by phone (E.164) within a company: created on first booking. Creation
is an upsert, so two first bookings of one new caller racing on different staff members both
succeed and share one customer row.

An existing customer's name and e-mail change only when the booking comes from that customer
(`update_existing`: a call from their own number); a booking "for someone else" (another
caller, the REST API, a Cal.com import) keeps what is stored. The admin API edits them directly.
"""

from __future__ import annotations

import functools
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.types import new_id, utcnow
from shared.models import Customer

# The table, not the mapped class: an ORM-enabled INSERT takes the ORM's bulk path per run.
_TABLE = cast(sa.Table, Customer.__table__)
_COLUMNS = ("id", "company_id", "name", "phone", "email", "language", "created_at", "updated_at")


def _values() -> dict[str, Any]:
    return {column: sa.bindparam(column) for column in _COLUMNS}


@functools.cache
def _sqlite_upsert(update_existing: bool) -> Any:
    """The upsert built once (building and keying it per booking cost more than running it)."""
    stmt = sqlite.insert(_TABLE).values(_values())
    changes: dict[str, Any] = {"name": stmt.excluded.name} if update_existing else {}
    return stmt.on_conflict_do_update(
        index_elements=["company_id", "phone"],
        set_={**changes, "updated_at": stmt.excluded.updated_at},
    )


@functools.cache
def _mysql_upsert(update_existing: bool) -> Any:
    stmt = mysql.insert(_TABLE).values(_values())
    on_duplicate: dict[str, Any] = {"name": stmt.inserted.name} if update_existing else {}
    return stmt.on_duplicate_key_update(**on_duplicate, updated_at=stmt.inserted.updated_at)


async def upsert_customer(
    session: AsyncSession,
    *,
    company_id: str,
    phone: str,
    name: str,
    email: str | None,
    known_id: str | None,
    known_name: str | None,
    update_existing: bool = False,
) -> str:
    """The customer id for `phone`; one statement at most on the usual paths."""
    now = utcnow()
    if known_id is not None:
        if update_existing and (name != known_name or email):
            values: dict[str, Any] = {"name": name, "updated_at": now}
            if email:
                values["email"] = email
            await session.execute(
                sa.update(Customer).where(Customer.id == known_id).values(**values)
            )
        return known_id
    customer_id = new_id()
    row = {
        "id": customer_id,
        "company_id": company_id,
        "name": name,
        "phone": phone,
        "email": email,
        "language": "de",
        "created_at": now,
        "updated_at": now,
    }
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        # The write transaction holds SQLite's lock since BEGIN IMMEDIATE: no race possible.
        await session.execute(_sqlite_upsert(update_existing), row)
        return customer_id
    result = await session.execute(_mysql_upsert(update_existing), row)
    if getattr(result, "rowcount", 1) == 1:  # 1 = inserted, 2 = updated an existing row
        return customer_id
    existing = await session.scalar(sa.select(Customer.id).where(Customer.phone == phone))
    assert existing is not None
    return existing
