"""The data layer filters every tenant-owned query by company, even one that forgets to."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy import delete, func, insert, select, update

from shared.db.engine import Database
from shared.db.scoped import execute, scoped
from shared.db.tenancy import PER_CALL, SYSTEM, current_company
from shared.errors import TenantNotSet
from shared.models import Branch, Company, OutboxEvent
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


async def test_companies_are_covered_by_their_id(db: Database) -> None:
    a, b, _, _ = await _two_tenants_with_branches(db)
    async with db.transaction(a, write=False) as session:
        names = (await session.scalars(select(Company.id))).all()
        assert names == [a]
        assert await session.get(Company, b) is None
        assert (await current_company(session)).id == a
    with pytest.raises(TenantNotSet):
        async with db.transaction(a) as session:
            session.add(Company(name=f"Smuggled {uuid.uuid4().hex[:6]}"))
            await session.flush()


async def test_an_insert_statement_writes_only_the_session_company(db: Database) -> None:
    a, b, _, _ = await _two_tenants_with_branches(db)
    with pytest.raises(TenantNotSet):
        async with db.transaction(a) as session:
            await session.execute(
                insert(Branch).values(id=str(uuid.uuid4()), company_id=b, name="X", timezone="UTC")
            )
    async with db.transaction(SYSTEM, write=False) as session:
        assert (
            await session.scalar(
                select(func.count())
                .select_from(Branch)
                .where(Branch.company_id == b, Branch.name == "X")
            )
            == 0
        )


async def test_rows_of_nullable_company_tables_get_the_session_company(db: Database) -> None:
    a, _b, _, _ = await _two_tenants_with_branches(db)
    async with db.transaction(a) as session:
        event = OutboxEvent(queue="q", job_name="j", payload={}, available_at=datetime.now(UTC))
        session.add(event)
        await session.flush()
        assert event.company_id == a
    with pytest.raises(TenantNotSet):
        async with db.transaction(None) as session:
            session.add(
                OutboxEvent(queue="q", job_name="j", payload={}, available_at=datetime.now(UTC))
            )
            await session.flush()


async def test_scoped_statements_run_where_their_scope_allows(db: Database) -> None:
    a, b, branch_a, branch_b = await _two_tenants_with_branches(db)
    names = scoped(select(Branch.id).where(Branch.id.in_([branch_a, branch_b])), SYSTEM)
    # An auth lookup: SYSTEM-scoped on a session not bound yet.
    async with db.transaction(None, write=False) as session:
        assert set((await session.scalars(names)).all()) == {branch_a, branch_b}
    per_call = scoped(select(Branch.__table__.c.id), PER_CALL)
    async with db.transaction(SYSTEM, write=False) as session:
        rows = (await execute(session, per_call, company_id=b)).scalars().all()
        assert rows == [branch_b]
    async with db.transaction(a, write=False) as session:
        rows = (await execute(session, per_call, company_id=b)).scalars().all()
        assert rows == [branch_a]  # the session's company wins
    with pytest.raises(TenantNotSet):  # without its :tenant value
        async with db.transaction(a, write=False) as session:
            await session.execute(per_call)
    with pytest.raises(TenantNotSet):  # with another company's
        async with db.transaction(a, write=False) as session:
            await session.execute(per_call, {"tenant": b})
    with pytest.raises(TenantNotSet):
        async with db.transaction(None, write=False) as session:
            await execute(session, per_call, company_id=a)


async def test_an_outer_join_is_scoped_in_its_on_clause(db: Database) -> None:
    a, _b, branch_a, _ = await _two_tenants_with_branches(db)
    companies, branches = Company.__table__, Branch.__table__
    statement = scoped(
        sa.select(branches.c.id, companies.c.id.label("company")).select_from(
            branches.outerjoin(companies, companies.c.id == branches.c.company_id)
        ),
        a,
    )
    async with db.transaction(a, write=False) as session:
        assert (await session.execute(statement)).all() == [(branch_a, a)]
