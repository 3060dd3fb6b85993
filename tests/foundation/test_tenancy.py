"""The data layer filters every tenant-owned query by company, even one that forgets to."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, func, select, update

from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.errors import TenantNotSet
from shared.models import Branch
from tests.support.factories import create_tenant


async def _two_tenants_with_branches(db: Database) -> tuple[str, str, str, str]:
    a = await create_tenant(db)
    b = await create_tenant(db)
    ids = []
    for tenant in (a, b):
        async with db.transaction(tenant.company_id) as session:
            branch = Branch(name="Main", timezone="Europe/Berlin")
            session.add(branch)
            await session.flush()
            ids.append(branch.id)
    return a.company_id, b.company_id, ids[0], ids[1]


async def test_select_without_filter_sees_only_own_rows(db: Database) -> None:
    a, _b, branch_a, branch_b = await _two_tenants_with_branches(db)
    async with db.transaction(a, write=False) as session:
        rows = (await session.execute(select(Branch))).scalars().all()
        count = await session.scalar(select(func.count()).select_from(Branch))
        assert [row.id for row in rows] == [branch_a]
        assert count == 1
        assert await session.get(Branch, branch_b) is None
        assert (await session.get(Branch, branch_a)) is not None


async def test_update_and_delete_are_filtered(db: Database) -> None:
    a, _b, branch_a, branch_b = await _two_tenants_with_branches(db)
    async with db.transaction(a) as session:
        await session.execute(update(Branch).values(city="Hacked"))
        await session.execute(delete(Branch).where(Branch.id == branch_b))
    async with db.transaction(SYSTEM, write=False) as session:
        b_row = await session.get(Branch, branch_b)
        a_row = await session.get(Branch, branch_a)
    assert b_row is not None and b_row.city is None
    assert a_row is not None and a_row.city == "Hacked"


async def test_session_without_tenant_cannot_touch_tenant_tables(db: Database) -> None:
    with pytest.raises(TenantNotSet):
        async with db.transaction(None, write=False) as session:
            await session.execute(select(Branch))


async def test_new_rows_get_the_session_company_and_foreign_rows_are_refused(
    db: Database,
) -> None:
    a, b, _, _ = await _two_tenants_with_branches(db)
    async with db.transaction(a) as session:
        branch = Branch(name="Second", timezone="Europe/Berlin")
        session.add(branch)
        await session.flush()
        assert branch.company_id == a
    with pytest.raises(TenantNotSet):
        async with db.transaction(a) as session:
            session.add(Branch(name="Smuggled", timezone="UTC", company_id=b))
            await session.flush()
