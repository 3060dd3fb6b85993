"""A tenant table reached only through an expression is filtered too (or refused).

The ORM criteria sees the entities of a statement's columns and explicit FROM; a table that
enters the FROM list only through a function of its columns in WHERE was invisible to it and
a company-bound session counted every company's rows. Found by the ops trends (issue 16).
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select

from shared.db import tenancy
from shared.db.engine import Database
from shared.errors import TenantNotSet
from shared.models import Appointment, Branch, Staff
from tests.foundation.test_tenancy import _two_tenants_with_branches

OWN_ONLY = {
    "function in WHERE": lambda: select(func.count()).where(
        func.coalesce(Branch.city, Branch.name) == "Main"
    ),
    "column in WHERE": lambda: select(func.count()).where(Branch.name == "Main"),
    "aggregate of a column": lambda: select(func.count(Branch.id)),
    "CASE over a column": lambda: select(func.sum(sa.case((Branch.name == "Main", 1), else_=0))),
    "correlated subquery with a function": lambda: (
        select(func.count())
        .select_from(Branch)
        .where(
            Branch.id.in_(
                select(func.max(Branch.id)).where(func.length(Branch.name) > 0).scalar_subquery()
            )
        )
    ),
}


@pytest.mark.parametrize("case", list(OWN_ONLY))
async def test_a_count_through_an_expression_sees_only_the_own_company(
    db: Database, case: str
) -> None:
    a, _b, _branch_a, _branch_b = await _two_tenants_with_branches(db)
    async with db.transaction(a, write=False) as session:
        assert (await session.execute(OWN_ONLY[case]())).scalar_one() == 1


async def test_a_subquery_reaching_a_tenant_table_only_through_a_function_is_refused(
    db: Database,
) -> None:
    a, _b, _branch_a, _branch_b = await _two_tenants_with_branches(db)
    leaking = select(select(func.count()).where(func.length(Branch.name) > 0).scalar_subquery())
    with pytest.raises(TenantNotSet, match="select_from"):
        async with db.transaction(a, write=False) as session:
            await session.execute(leaking)
    # Named with select_from(), the same subquery is filtered and counts the own branch only.
    fixed = select(
        select(func.count())
        .select_from(Branch)
        .where(func.length(Branch.name) > 0)
        .scalar_subquery()
    )
    async with db.transaction(a, write=False) as session:
        assert (await session.execute(fixed)).scalar_one() == 1


@pytest.mark.parametrize("case", list(OWN_ONLY))
async def test_a_statement_built_per_call_is_filtered_every_time_from_its_remembered_shape(
    db: Database, case: str
) -> None:
    """Built anew per call (a new object each time), the statement is analysed once per shape
    (SQLAlchemy's cache key): the later calls take the remembered answer and still see only
    their own company, for either company."""
    a, b, _branch_a, _branch_b = await _two_tenants_with_branches(db)
    tenancy._by_shape.clear()
    for tenant in (a, b, a, b):
        async with db.transaction(tenant, write=False) as session:
            assert (await session.execute(OWN_ONLY[case]())).scalar_one() == 1
    assert len(tenancy._by_shape) == 1


async def test_a_refused_shape_is_refused_every_time_and_the_shapes_kept_are_bounded(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _b, _branch_a, _branch_b = await _two_tenants_with_branches(db)
    for _ in range(2):  # a refusal is never remembered as an answer
        leaking = select(select(func.count()).where(func.length(Branch.name) > 0).scalar_subquery())
        with pytest.raises(TenantNotSet, match="select_from"):
            async with db.transaction(a, write=False) as session:
                await session.execute(leaking)
    monkeypatch.setattr(tenancy, "SHAPES_KEPT", 3)
    tenancy._by_shape.clear()
    async with db.transaction(a, write=False) as session:
        for length in range(1, 7):  # six shapes: a different literal SQL text each
            query = select(func.count()).where(
                func.length(Branch.name) > sa.literal_column(str(length))
            )
            await session.execute(query)
    assert len(tenancy._by_shape) == 3


FROM_LISTS = {
    "ORM entity with an inner and an outer join": lambda: (
        select(Appointment)
        .join(Staff, Staff.id == Appointment.staff_id)
        .outerjoin(Branch, Branch.id == Appointment.branch_id)
        .where(Appointment.id == "x")
    ),
    "count through a WHERE expression": lambda: select(func.count()).where(Branch.name == "M"),
    "explicit select_from": lambda: select(Branch.id).select_from(Branch),
    "Core table columns": lambda: select(Appointment.__table__.c.id).where(
        Appointment.__table__.c.staff_id == "x"
    ),
    "FROM a subquery": lambda: select(func.count()).select_from(select(Branch.id).subquery()),
    "UNION member with an alias": lambda: select(sa.orm.aliased(Staff, name="s").id),
}


@pytest.mark.parametrize("case", list(FROM_LISTS))
def test_final_froms_is_sqlalchemys_from_list_without_compiling(case: str) -> None:
    """`final_froms` (the tenancy checks' FROM list) equals `Select.get_final_froms()`; it
    uses SQLAlchemy's compile state directly, so an upgrade that changes it fails here."""
    statement = FROM_LISTS[case]()
    assert [str(f) for f in tenancy.final_froms(statement)] == [
        str(f) for f in statement.get_final_froms()
    ]


BUILT_ONCE = select(Branch.name).order_by(Branch.name)


async def test_a_statement_built_once_runs_with_each_companys_criteria_kept_per_company(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same statement object, executed for one company after another: each run sees its
    own company's rows (the criteria kept per statement and company), and a statement keeps
    the criteria of at most COMPANIES_PER_STATEMENT companies."""
    monkeypatch.setattr(tenancy, "COMPANIES_PER_STATEMENT", 2)
    companies = [await _two_tenants_with_branches(db) for _ in range(2)]
    tenants = [companies[0][0], companies[0][1], companies[1][0]]
    for tenant in (*tenants, tenants[0]):
        async with db.transaction(tenant, write=False) as session:
            assert (await session.execute(BUILT_ONCE)).scalars().all() == ["Main"]
    kept = tenancy._criteria_applied[tenancy.anchor_covered_tables(BUILT_ONCE)]
    assert len(kept) == 2 and set(kept) <= set(tenants)
