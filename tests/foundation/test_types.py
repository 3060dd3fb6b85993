"""Portable types: UTC instants with microseconds, Decimal money, enums refused by CHECK."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError, StatementError

from shared.db.engine import Database
from shared.models import Service
from tests.support.factories import create_tenant


async def _branch(db: Database, company_id: str) -> str:
    from shared.models import Branch

    async with db.transaction(company_id) as session:
        branch = Branch(name="Main", timezone="Europe/Berlin")
        session.add(branch)
        await session.flush()
        return branch.id


async def test_instants_round_trip_in_utc_with_microseconds(db: Database) -> None:
    from shared.models import Staff, TimeOff

    tenant = await create_tenant(db)
    branch_id = await _branch(db, tenant.company_id)
    local = datetime(2026, 10, 25, 2, 30, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    async with db.transaction(tenant.company_id) as session:
        staff = Staff(branch_id=branch_id, name="Ana")
        session.add(staff)
        await session.flush()
        off = TimeOff(staff_id=staff.id, starts_at=local, ends_at=local + timedelta(hours=1))
        session.add(off)
        await session.flush()
        off_id = off.id
    async with db.transaction(tenant.company_id, write=False) as session:
        loaded = await session.get(TimeOff, off_id)
        assert loaded is not None
        assert loaded.starts_at == datetime(2026, 10, 25, 0, 30, 0, 123456, tzinfo=UTC)
        assert loaded.starts_at.tzinfo is UTC


async def test_naive_datetimes_are_refused(db: Database) -> None:
    from shared.models import TimeOff

    tenant = await create_tenant(db)
    with pytest.raises(StatementError):
        async with db.transaction(tenant.company_id) as session:
            session.add(
                TimeOff(staff_id="x", starts_at=datetime(2026, 1, 1), ends_at=datetime(2026, 1, 2))
            )
            await session.flush()


async def test_money_is_decimal(db: Database) -> None:
    tenant = await create_tenant(db)
    async with db.transaction(tenant.company_id) as session:
        service = Service(name="Cut", duration_minutes=30, price=Decimal("28.10"))
        session.add(service)
        await session.flush()
        service_id = service.id
    async with db.transaction(tenant.company_id, write=False) as session:
        loaded = await session.get(Service, service_id)
        assert loaded is not None
        assert loaded.price == Decimal("28.10")
        assert isinstance(loaded.price, Decimal)


async def test_enum_check_constraint_refuses_unknown_values(db: Database) -> None:
    tenant = await create_tenant(db)
    # SQLite reports a CHECK failure as IntegrityError, MariaDB as OperationalError 4025.
    with pytest.raises((IntegrityError, OperationalError)):
        async with db.transaction(tenant.company_id) as session:
            await session.execute(
                text(
                    "INSERT INTO policy_configurations "
                    "(id, company_id, level, entity_id, policy_type, config, created_at,"
                    " updated_at)"
                    " VALUES ('p1', :c, 'galaxy', 'e', 'cancellation', '{}', "
                    "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"
                ),
                {"c": tenant.company_id},
            )
