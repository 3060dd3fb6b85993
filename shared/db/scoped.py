"""The one helper for Core and raw statements on company data (docs/adr/0010).

`scoped(statement, tenant)` adds `<table>.company_id = <tenant>` (`companies.id` for the
companies table) to every SELECT, UPDATE and DELETE inside the statement, for every covered
table it reads (joins, unions, subqueries, aliases; the inner side of an outer join in its ON
clause), and marks the statement with its scope. `tenant` is required:

- a company id: the statement sees and changes that company's rows only;
- `PER_CALL`: for statements built once (the hot paths): the filter is `= :tenant` and each
  run supplies the value (`execute(session, ...)` from the session, `RawPool` methods from
  their required `tenant` argument);
- `SYSTEM`: no filter, every company's rows; the explicit, greppable opt-in of crons,
  ingestion and auth lookups (tests/foundation/test_tenancy_coverage.py lists where it may
  appear).

A statement that reaches the database touching a covered table without having been built
here or filtered by the ORM hook is refused: on a session by `shared.db.tenancy`, on a bare
connection of the application's engines by `guard_engine`, on the raw pool by `RawPool`.
Scope a statement last: a table joined after `scoped` is not filtered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Result
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import ClauseElement

from shared.db.tenancy import (
    CHECKED_OPTION,
    PER_CALL,
    SCOPE_OPTION,
    SYSTEM,
    TENANT_PARAM,
    check_scope,
    covered_table_names,
    final_froms,
    tenant_column,
    touches_covered_tables,
)
from shared.errors import TenantNotSet

S = TypeVar("S", bound=sa.Executable)
_CHECKED = {CHECKED_OPTION: True}


def scoped(statement: S, tenant: str) -> S:
    """`statement` filtered to `tenant` (a company id, PER_CALL or SYSTEM) and marked so."""
    if not tenant:
        raise TenantNotSet("scoped() needs a company id, PER_CALL or SYSTEM")
    if tenant != SYSTEM:
        value: Any = (
            sa.bindparam(TENANT_PARAM, type_=sa.String(36))
            if tenant == PER_CALL
            else sa.literal(tenant, sa.String(36))
        )
        statement = _filtered(statement, value)
    return statement.execution_options(**{SCOPE_OPTION: tenant})


def _filtered(statement: S, value: Any) -> S:
    def condition(from_: Any) -> Any:
        if isinstance(from_, sa.Table) or (
            isinstance(from_, sa.Alias) and isinstance(from_.element, sa.Table)
        ):
            source: Any = from_.element if isinstance(from_, sa.Alias) else from_
            if source.name in covered_table_names():
                return tenant_column(from_) == value
        return None

    def where_sides(from_: Any) -> list[Any]:
        if isinstance(from_, sa.Join):
            if from_.full:
                raise ValueError("scoped() cannot filter a FULL OUTER JOIN; query each side")
            return where_sides(from_.left) + ([] if from_.isouter else where_sides(from_.right))
        found = condition(from_)
        return [] if found is None else [found]

    def visit_select(select: Any) -> None:
        for from_ in final_froms(select):
            for found in where_sides(from_):
                select._where_criteria += (found,)
        # Joins made with Select.join()/outerjoin() become Join objects only when compiled:
        # the outer side's filter goes into their ON clause here.
        joins = []
        for target, onclause, left, flags in select._setup_joins:
            if flags.get("full"):
                raise ValueError("scoped() cannot filter a FULL OUTER JOIN; query each side")
            found = condition(target) if flags.get("isouter") else None
            if found is not None:
                if onclause is None:
                    raise ValueError("scoped() needs the ON clause of an outer join spelled out")
                onclause = sa.and_(onclause, found)
            joins.append((target, onclause, left, flags))
        select._setup_joins = tuple(joins)

    def visit_join(join: Any) -> None:
        if join.isouter and not join.full:
            for found in where_sides(join.right):
                join.onclause = sa.and_(join.onclause, found)

    def visit_dml(dml: Any) -> None:
        found = condition(dml.table)
        if found is not None:
            dml._where_criteria += (found,)

    visitor = {"select": visit_select, "join": visit_join, "update": visit_dml}
    visitor["delete"] = visit_dml
    return cast(S, visitors.cloned_traverse(cast(Any, statement), {}, visitor))


def tenant_value(session: AsyncSession | Any, company_id: str) -> str:
    """The `:tenant` of a PER_CALL statement run on `session` for `company_id`: the session's
    company (another company's rows stay invisible); in the system scope, `company_id`
    itself. A session bound to no tenant may not read covered tables at all."""
    tenant = session.info.get("tenant")
    if tenant == SYSTEM:
        return company_id
    if not tenant:
        raise TenantNotSet("query on a tenant-owned table from a session bound to no tenant")
    return str(tenant)


def _scope_of(statement: Any) -> str:
    scope = statement.get_execution_options().get(SCOPE_OPTION)
    if scope is None:
        raise TenantNotSet("build the statement with shared.db.scoped.scoped()")
    return str(scope)


async def execute(
    session: AsyncSession,
    statement: sa.Executable,
    params: Mapping[str, Any] | None = None,
    *,
    company_id: str | None = None,
) -> Result[*tuple[Any, ...]]:
    """Run a `scoped` statement on the session's connection (Core: no ORM machinery).

    A PER_CALL statement gets its `:tenant` from `tenant_value(session, company_id)`; one
    scoped to a company must match the session's company (or run in the system scope).
    """
    scope = _scope_of(statement)
    values = dict(params or {})
    if scope == PER_CALL:
        values[TENANT_PARAM] = tenant_value(session, company_id or "")
        if not values[TENANT_PARAM]:
            raise TenantNotSet("a statement scoped per call needs a company")
    else:
        check_scope(scope, session.info.get("tenant"))
    connection = await session.connection()
    return await connection.execute(statement, values, execution_options=_CHECKED)


def check_raw(statement: Any, params: Mapping[str, Any], tenant: str) -> Mapping[str, Any]:
    """The parameters a raw-pool statement runs with for `tenant` (a company id or SYSTEM);
    refuses a statement not built with `scoped` and a tenant that does not fit its scope."""
    scope = _scope_of(statement)
    if scope == SYSTEM:
        if tenant != SYSTEM:
            raise TenantNotSet("a SYSTEM-scoped statement runs with tenant=SYSTEM only")
        return params
    if not tenant or tenant in (SYSTEM, PER_CALL):
        raise TenantNotSet("a company-scoped raw statement needs the company id")
    if scope == PER_CALL:
        params = {**params, TENANT_PARAM: tenant}
    elif scope != tenant:
        raise TenantNotSet("a statement scoped to another company")
    if params.get("company_id", tenant) != tenant:
        raise TenantNotSet("a row of another company cannot be written for this tenant")
    return params


def _before_execute(
    _conn: Any,
    statement: Any,
    multiparams: Any,
    params: Any,
    execution_options: Mapping[str, Any],
) -> None:
    """Refuse a statement on a covered table that neither `scoped` nor the ORM hook passed.

    A unit-of-work flush (recognised by the mapper's compiled cache the ORM passes) is checked
    by the session's before_flush hook instead."""
    if execution_options.get(CHECKED_OPTION) or "compiled_cache" in execution_options:
        return
    if not isinstance(statement, ClauseElement):
        return
    scope = execution_options.get(SCOPE_OPTION)
    if scope == PER_CALL:
        rows = list(multiparams or ()) or [params or {}]
        if any(not isinstance(row, Mapping) or not row.get(TENANT_PARAM) for row in rows):
            raise TenantNotSet("a statement scoped per call needs its :tenant parameter")
        return
    if scope is not None:
        return
    if touches_covered_tables(statement):
        raise TenantNotSet(
            "a statement on a tenant table must go through the session or shared.db.scoped.scoped()"
        )


def guard_engine(engine: AsyncEngine) -> None:
    """Check every statement run on `engine`'s connections (see `_before_execute`)."""
    if not event.contains(engine.sync_engine, "before_execute", _before_execute):
        event.listen(engine.sync_engine, "before_execute", _before_execute)
