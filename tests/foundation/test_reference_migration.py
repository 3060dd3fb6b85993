"""Migration 0007 gives every existing appointment a booking reference, unique per company, on
SQLite and MariaDB, and leaves the schema exactly as the models say (issue 13)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from shared.models import Base
from tests.support.migrations import check, migrate

FORMAT = re.compile(r"^[ABCDEFGHJKMNPQRSTUVWXYZ23456789]{6}$")
NOW = datetime(2026, 12, 1, 9, tzinfo=UTC).replace(tzinfo=None)


def _value(table: str, column: sa.Column[Any], n: int) -> Any:
    """A plausible value for a NOT NULL column without a default (typed as the model types
    it: MariaDB reflects JSON as LONGTEXT and booleans as TINYINT)."""
    model = Base.metadata.tables[table].columns.get(column.name)
    kind = model.type if model is not None else column.type
    if isinstance(kind, sa.TypeDecorator):
        kind = kind.impl_instance
    if isinstance(kind, sa.Boolean):
        return True
    if isinstance(kind, sa.DateTime):
        return NOW
    if isinstance(kind, sa.Numeric):
        return Decimal("10.00")
    if isinstance(kind, sa.Integer):
        return 30
    if isinstance(kind, sa.JSON):
        return {}
    length = getattr(kind, "length", None) or 20
    return f"v{n}"[:length]


def _insert_row(conn: sa.Connection, table: str, **given: Any) -> str:
    reflected = sa.Table(table, sa.MetaData(), autoload_with=conn)
    for column in reflected.columns:  # write JSON as the models do
        model = Base.metadata.tables[table].columns.get(column.name)
        if model is not None and isinstance(model.type, sa.JSON):
            column.type = sa.JSON()
    row: dict[str, Any] = {"id": str(uuid.uuid4())}
    for column in reflected.columns:
        if column.name in given or column.name in row:
            continue
        if not column.nullable and column.server_default is None:
            row[column.name] = _value(table, column, len(row))
    row.update(given)
    conn.execute(reflected.insert().values(row))
    return str(row["id"])


def _seed(conn: sa.Connection, per_company: int) -> None:
    """Two companies with `per_company` appointments each, in the schema of revision 0006."""
    for c in range(2):
        company = _insert_row(conn, "companies", name=f"Co {c}", timezone="Europe/Berlin")
        branch = _insert_row(conn, "branches", company_id=company, timezone="Europe/Berlin")
        service = _insert_row(conn, "services", company_id=company, branch_id=None)
        staff = _insert_row(conn, "staff", company_id=company, branch_id=branch)
        customer = _insert_row(conn, "customers", company_id=company, phone=f"+4917012345{c}")
        for i in range(per_company):
            start = NOW + timedelta(hours=i)
            _insert_row(
                conn,
                "appointments",
                company_id=company,
                branch_id=branch,
                service_id=service,
                staff_id=staff,
                customer_id=customer,
                starts_at=start,
                ends_at=start + timedelta(minutes=30),
                blocked_from=start,
                blocked_until=start + timedelta(minutes=30),
                status="confirmed",
                sync_status="local_only",
                source="api",
                currency="EUR",
                calcom_booking_uid=None,
            )


async def test_existing_appointments_get_unique_references(empty_database: str) -> None:
    await migrate(empty_database, "upgrade", "0006")
    engine = create_async_engine(empty_database)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_seed, 150)
        await migrate(empty_database, "upgrade", "head")
        async with engine.connect() as conn:
            rows = (
                await conn.execute(sa.text("SELECT company_id, reference FROM appointments"))
            ).all()
    finally:
        await engine.dispose()
    assert len(rows) == 300
    assert all(FORMAT.match(reference) for _, reference in rows)
    by_company: dict[str, set[str]] = {}
    for company_id, reference in rows:
        by_company.setdefault(company_id, set()).add(reference)
    assert sorted(len(codes) for codes in by_company.values()) == [150, 150]
    await check(empty_database)  # the backfilled schema is exactly the models'
