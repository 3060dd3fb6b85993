"""Customers are identified by phone (E.164) within a company: created on first booking, their
name kept up to date. Creation is an upsert, so two first bookings of one new caller racing on
different staff members both succeed and share one customer row.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.types import new_id, utcnow
from shared.models import Customer


async def upsert_customer(
    session: AsyncSession,
    *,
    company_id: str,
    phone: str,
    name: str,
    email: str | None,
    known_id: str | None,
    known_name: str | None,
) -> str:
    """The customer id for `phone`; one statement at most on the usual paths."""
    now = utcnow()
    if known_id is not None:
        if name != known_name or email:
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
        stmt = sqlite.insert(Customer).values(row)
        stmt = stmt.on_conflict_do_update(
            index_elements=["company_id", "phone"], set_={"name": name, "updated_at": now}
        )
        await session.execute(stmt)
        return customer_id
    mstmt = mysql.insert(Customer).values(row)
    mstmt = mstmt.on_duplicate_key_update(name=mstmt.inserted.name, updated_at=now)
    result = await session.execute(mstmt)
    if getattr(result, "rowcount", 1) == 1:  # 1 = inserted, 2 = updated an existing row
        return customer_id
    existing = await session.scalar(sa.select(Customer.id).where(Customer.phone == phone))
    assert existing is not None
    return existing
