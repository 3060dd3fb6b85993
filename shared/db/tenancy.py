"""The tenant filter, applied by the data layer itself (docs/adr/0010).

Coverage is one rule: a table holds company data when it has a `company_id` column, or is
`companies` itself (its `id` is the tenant). Its mapped class carries the `TenantScoped`
marker, and `install_tenant_guard` refuses to start when one does not (`uncovered_tables`).

- ORM statements (SELECT/UPDATE/DELETE) on a session bound to a company get
  `company_id = <tenant>` for every `TenantScoped` entity via `with_loader_criteria`
  (aliases, joins, subqueries and relationship loads included). Rows whose nullable
  `company_id` is NULL (platform keys, unattributed events) are seen only in the system scope.
- Core statements and raw-pool statements go through `shared.db.scoped.scoped`; one that
  touches a covered table without it is refused here (session) and in `shared.db.scoped`'s
  engine guard and `RawPool` (connection, raw pool).
- A session bound to no tenant may not touch covered tables at all (`TenantNotSet`); system
  work opts in with the visible `SYSTEM` scope. New rows get the session's company id, and a
  row of another company cannot be flushed.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping, Sequence
from functools import cache, lru_cache
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria
from sqlalchemy.orm.context import _ORMSelectCompileState
from sqlalchemy.sql.selectable import SelectState
from sqlalchemy.sql.util import find_tables

from shared.errors import TenantNotSet
from shared.models.base import Base, TenantScoped

SYSTEM: Final = "__system__"
"""The explicit system scope: every company's rows (crons, sweepers, seeding, auth lookups)."""
PER_CALL: Final = "__per_call__"
"""The scope of a statement built once whose tenant is given at each run as `:tenant`."""
TENANT_PARAM: Final = "tenant"
SCOPE_OPTION: Final = "tenant_scope"  # execution option set by `scoped`
CHECKED_OPTION: Final = "tenant_checked"  # set once a statement passed the checks below
TENANT_TABLE: Final = "companies"
_installed = False


def tenant_column(table: Any) -> Any:
    """The column a covered table is filtered on (`company_id`; `id` of companies), or None."""
    columns = getattr(table, "c", None)
    if columns is None:
        return None
    if getattr(table, "name", None) == TENANT_TABLE:
        return columns.get("id")
    return columns.get("company_id")


def uncovered_tables(metadata: sa.MetaData, classes: Iterable[type[Any]]) -> list[str]:
    """Tables of `metadata` that hold company data (`tenant_column`) but are not mapped by a
    `TenantScoped` class among `classes`: the ORM filter would not see them."""
    scoped_tables = {
        getattr(cls, "__table__", None) for cls in classes if issubclass(cls, TenantScoped)
    }
    return sorted(
        table.name
        for table in metadata.tables.values()
        if tenant_column(table) is not None and table not in scoped_tables
    )


@cache
def covered_table_names() -> frozenset[str]:
    """Names of the covered tables of the application's metadata."""
    return frozenset(
        table.name for table in Base.metadata.tables.values() if tenant_column(table) is not None
    )


def touches_covered_tables(statement: Any) -> bool:
    """Does the statement read or write a covered table (anywhere, subqueries included)?"""
    tables = find_tables(
        statement,
        check_columns=True,
        include_aliases=True,
        include_joins=True,
        include_selects=True,
        include_crud=True,
    )
    covered = covered_table_names()
    return any(getattr(table, "name", None) in covered for table in tables)


def check_scope(scope: str, session_tenant: Any) -> None:
    """May a statement scoped to `scope` run on a session bound to `session_tenant`?

    SYSTEM-scoped statements are an explicit opt-in and run anywhere (auth lookups on an
    unbound session, cross-company uniqueness checks); a statement scoped to one company runs
    on that company's session or in the system scope, never on another company's.
    """
    if scope in (SYSTEM, PER_CALL):
        return
    if session_tenant not in (None, SYSTEM, scope):
        raise TenantNotSet("a statement scoped to another company than the session's")


def _tenant_filter(state: ORMExecuteState) -> None:
    options = state.execution_options
    if options.get(CHECKED_OPTION):
        return
    tenant = state.session.info.get("tenant")
    scope = options.get(SCOPE_OPTION)
    if scope is not None:  # built by `scoped`: it carries its own filter
        if scope == PER_CALL:
            _require_tenant_param(state.parameters, tenant)
        check_scope(scope, tenant)
    elif state.is_insert:
        _check_insert(state, tenant)
    elif tenant == SYSTEM:
        pass
    elif not tenant or not state.is_orm_statement:
        if touches_covered_tables(state.statement):
            if tenant:
                raise TenantNotSet(
                    "a Core statement on a tenant table must be built with "
                    "shared.db.scoped.scoped()"
                )
            raise TenantNotSet("query on a tenant-owned table from a session bound to no tenant")
    else:
        # Added to every statement: entities reached only through select_from() or a column
        # (count queries) are not in `all_mappers`, and the criteria is a no-op where unused.
        # A covered table that reaches the FROM list only through an expression (a function of
        # its columns in WHERE) is invisible to the criteria: named with select_from() at the
        # top level, refused in a subquery (`anchor_covered_tables`).
        state.statement = _with_criteria(anchor_covered_tables(state.statement), tenant)
    state.update_execution_options(**{CHECKED_OPTION: True})


# A statement with one company's criteria, kept per statement (weakly) and company: executing
# the same object again skips SQLAlchemy's per-object work (its cache key, the cached result
# metadata adapted to a new object's columns), a sixth of a booking's CPU. Bounded per
# statement: the companies seen last.
_criteria_applied: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()
COMPANIES_PER_STATEMENT: Final = 256


def _with_criteria(statement: Any, tenant: str) -> Any:
    per_company = _criteria_applied.get(statement)
    if per_company is None:
        per_company = _criteria_applied[statement] = {}
    applied = per_company.get(tenant)
    if applied is None:
        if len(per_company) >= COMPANIES_PER_STATEMENT:
            del per_company[next(iter(per_company))]
        applied = per_company[tenant] = statement.options(_tenant_criteria(tenant))
    return applied


@lru_cache(maxsize=4096)
def _tenant_criteria(tenant: str) -> Any:
    """The loader criteria of one company, built once per company (building it evaluates the
    lambda: a tenth of a small request's CPU)."""
    return with_loader_criteria(
        TenantScoped, lambda cls: cls.company_id == tenant, include_aliases=True
    )


def _base_table(from_: Any) -> Any:
    """The table under an alias (or the from clause itself)."""
    while isinstance(from_, sa.Alias | sa.sql.Subquery) and hasattr(from_, "element"):
        if not isinstance(from_.element, sa.TableClause | sa.Alias):
            break
        from_ = from_.element
    return from_


def _names(froms: Iterable[Any]) -> set[str]:
    return {
        getattr(table, "name", "")
        for source in froms
        for table in find_tables(source, include_aliases=True, include_joins=True)
    }


def _unanchored(select: sa.Select[Any], enclosing: frozenset[str]) -> list[Any]:
    """Covered tables in `select`'s FROM list that neither its columns nor its explicit FROM
    (select_from, joins) name, nor an enclosing select it correlates to: they came in through
    an expression the ORM criteria skips."""
    named = _names((*select._from_obj, *select.columns_clause_froms)) | enclosing
    covered = covered_table_names()
    return [
        from_
        for from_ in final_froms(select)
        if getattr(_base_table(from_), "name", None) in covered
        and getattr(from_, "name", None) not in named
    ]


def _check_subqueries(element: Any, enclosing: frozenset[str]) -> None:
    """Refuse a subquery that reaches a covered table only through an expression (a table of
    an enclosing select correlates to it and is filtered there)."""
    for child in element.get_children():
        if isinstance(child, sa.Select):
            if _unanchored(child, enclosing):
                raise TenantNotSet(
                    "a subquery reaches a tenant table only through an expression: name it "
                    "with select_from() so that the tenant filter applies"
                )
            _check_subqueries(child, enclosing | _names(final_froms(child)))
        else:
            _check_subqueries(child, enclosing)


def final_froms(select: sa.Select[Any]) -> Sequence[Any]:
    """`select.get_final_froms()` without compiling the statement to a string: SQLAlchemy's
    own method builds a default compiler (a full compilation) only to hand it to the compile
    state, which needs none at the top level. 0.2 ms instead of 1.3 ms for an ORM select
    with two joins; `tests/foundation/test_tenancy_expressions.py` checks both give the same
    FROM list (private API: SQLAlchemy is pinned in constraints.txt)."""
    if select._propagate_attrs.get("compile_state_plugin") == "orm":
        state = _ORMSelectCompileState._create_orm_context(select, toplevel=True, compiler=None)
        return state._get_display_froms()
    return SelectState(select, None)._get_display_froms()  # type: ignore[arg-type]


@cache
def _mapped_classes() -> dict[str, type[Any]]:
    return {
        mapper.local_table.name: mapper.class_
        for mapper in Base.registry.mappers
        if isinstance(mapper.local_table, sa.Table)
    }


# Statements are mostly built once (module constants on the hot paths): checked once each.
# Weak keys, so a statement built per call is forgotten with it; the value must never be the
# statement itself (a value holds its key alive for good: one leaked Select per query run),
# so an unchanged statement is remembered as `_UNCHANGED`.
_anchored: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_UNCHANGED: Final = object()
# A statement built per call is looked up by its shape: SQLAlchemy's cache key (what its own
# compiled cache uses: same key, same SQL, so the same FROM list) -> the classes to name with
# select_from(). Analysing a statement builds its compile state, which cost more than the
# rest of a request; the key is computed for the execution anyway. Bounded: the oldest shapes
# go first.
_by_shape: dict[Any, tuple[type[Any], ...]] = {}
SHAPES_KEPT: Final = 2048


def anchor_covered_tables(statement: Any) -> Any:
    """`statement` with every covered table of its FROM list visible to the tenant criteria.

    A top-level SELECT that reaches a covered table only through an expression gets that
    table named with select_from() (the same FROM, now filtered); a subquery doing so is
    refused: the filter could not see it, so the statement would read every company's rows.
    """
    if not isinstance(statement, sa.Select):
        return statement
    known = _anchored.get(statement)
    if known is not None:
        return statement if known is _UNCHANGED else known
    cache_key = statement._generate_cache_key()
    shape = None if cache_key is None else cache_key.key
    entities = None if shape is None else _by_shape.get(shape)
    if entities is None:
        entities = _missing_entities(statement)
        anchored = statement.select_from(*entities) if entities else statement
        _check_subqueries(anchored, frozenset(_names(final_froms(anchored))))
        if shape is not None:
            if len(_by_shape) >= SHAPES_KEPT:
                del _by_shape[next(iter(_by_shape))]
            _by_shape[shape] = entities
    else:
        anchored = statement.select_from(*entities) if entities else statement
    _anchored[statement] = _UNCHANGED if anchored is statement else anchored
    return anchored


def _missing_entities(statement: sa.Select[Any]) -> tuple[type[Any], ...]:
    """The mapped classes of the covered tables `statement` reaches only through an
    expression (an alias reached so: refused)."""
    missing = _unanchored(statement, frozenset())
    if not missing:
        return ()
    classes = _mapped_classes()
    entities = []
    for from_ in missing:
        cls = classes.get(getattr(from_, "name", ""))
        if cls is None:  # an alias reached only through an expression
            raise TenantNotSet(
                "a tenant table alias is reached only through an expression: name it "
                "with select_from() so that the tenant filter applies"
            )
        entities.append(cls)
    return tuple(entities)


def _require_tenant_param(parameters: Any, session_tenant: Any) -> None:
    """A PER_CALL statement on a session: its `:tenant` is given, and is the session's company
    (any company in the system scope)."""
    rows = parameters if isinstance(parameters, list) else [parameters or {}]
    if not rows or any(not row.get(TENANT_PARAM) for row in rows):
        raise TenantNotSet("a statement scoped per call needs its :tenant parameter")
    if session_tenant != SYSTEM and any(row[TENANT_PARAM] != session_tenant for row in rows):
        raise TenantNotSet("a statement scoped per call to another company than the session's")


def _check_insert(state: ORMExecuteState, tenant: Any) -> None:
    """An INSERT statement (not a flush) on a covered table writes only the session's company."""
    if tenant == SYSTEM:
        return
    table = getattr(state.statement, "table", None)
    if getattr(table, "name", None) not in covered_table_names():
        return
    if not tenant:
        raise TenantNotSet("writing a tenant-owned row from a session bound to no tenant")
    if getattr(state.statement, "select", None) is not None:
        raise TenantNotSet("an INSERT ... SELECT on a tenant table must be built with scoped()")
    rows: list[Mapping[Any, Any]] = []
    values = getattr(state.statement, "_values", None) or {}
    if values:
        rows.append({getattr(key, "key", key): getattr(v, "value", v) for key, v in values.items()})
    for many in getattr(state.statement, "_multi_values", ()) or ():
        for row in many:
            if isinstance(row, Mapping):
                rows.append({getattr(k, "key", k): getattr(v, "value", v) for k, v in row.items()})
    params: Any = state.parameters
    rows.extend(params if isinstance(params, list) else [params or {}])
    for row in rows:
        if "company_id" in row and row["company_id"] not in (tenant, None):
            raise TenantNotSet("a row of another company cannot be written in this session")


def _stamp_new_rows(session: Session, _ctx: Any, _instances: Any) -> None:
    tenant = session.info.get("tenant")
    if tenant == SYSTEM:
        return
    for obj in list(session.new) + list(session.dirty):
        if not isinstance(obj, TenantScoped):
            continue
        if not tenant:
            raise TenantNotSet("writing a tenant-owned row from a session bound to no tenant")
        if getattr(obj, "__tablename__", None) == TENANT_TABLE and obj in session.new:
            raise TenantNotSet("companies are created in the system scope")
        company_id = getattr(obj, "company_id", None)
        if company_id is None:
            obj.company_id = tenant
        elif company_id != tenant:
            raise TenantNotSet("a row of another company cannot be written in this session")


def install_tenant_guard() -> None:
    """Register the hooks once per process (idempotent); refuse to run with an uncovered table."""
    global _installed
    if _installed:
        return
    classes = [mapper.class_ for mapper in Base.registry.mappers]
    missing = uncovered_tables(Base.metadata, classes)
    if missing:
        raise RuntimeError(f"tables with company data but no tenant filter: {missing}")
    event.listen(Session, "do_orm_execute", _tenant_filter)
    event.listen(Session, "before_flush", _stamp_new_rows)
    _installed = True


def bind_tenant(session: Session | Any, company_id: str) -> None:
    """Bind a request's session to the authenticated company."""
    target = getattr(session, "sync_session", session)
    target.info["tenant"] = company_id
    session.info["tenant"] = company_id


def current_tenant(session: Any) -> str:
    """The company the session is bound to; refuses an unbound or SYSTEM session."""
    tenant = session.info.get("tenant")
    if not tenant or tenant == SYSTEM:
        raise TenantNotSet("this needs a session bound to one company")
    return str(tenant)


def session_scope(session: Any) -> str:
    """The scope a session is bound to: its company, or SYSTEM; refuses an unbound session."""
    tenant = session.info.get("tenant")
    if not tenant:
        raise TenantNotSet("query on a tenant-owned table from a session bound to no tenant")
    return str(tenant)


async def current_company(session: Any) -> Any:
    """The session's own company row (never "the first company in the table")."""
    from shared.models.company import Company

    return await session.get(Company, current_tenant(session))
