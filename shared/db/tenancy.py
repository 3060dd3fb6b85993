"""The tenant filter, applied by the data layer itself.

Every ORM SELECT/UPDATE/DELETE that touches a `TenantMixin` table gets
`company_id = <session tenant>` added via `with_loader_criteria`, so a query that forgets the
filter cannot leak. A session bound to no tenant may not touch tenant tables at all
(`TenantNotSet`); platform work binds the explicit `SYSTEM` tenant. New rows get the
session's company id, and a row of another company cannot be flushed.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import event, true
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria
from sqlalchemy.sql.util import find_tables

from shared.errors import TenantNotSet
from shared.models.base import Base, TenantMixin

SYSTEM = "__system__"
_installed = False


def _tenant_filter(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.execution_options.get("skip_tenant_filter"):
        return
    tenant = state.session.info.get("tenant")
    if tenant == SYSTEM:
        return
    if not tenant:
        if _touches_tenant_tables(state):
            raise TenantNotSet("query on a tenant-owned table from a session bound to no tenant")
        return
    # Added to every statement: entities reached only through select_from() or a column
    # (count queries) are not in `all_mappers`, and the criteria is a no-op where unused.
    state.statement = state.statement.options(
        with_loader_criteria(
            TenantMixin, lambda cls: cls.company_id == tenant, include_aliases=True
        )
    )


@cache
def _tenant_tables() -> frozenset[str]:
    return frozenset(
        getattr(mapper.local_table, "name", "")
        for mapper in Base.registry.mappers
        if issubclass(mapper.class_, TenantMixin)
    )


def _touches_tenant_tables(state: ORMExecuteState) -> bool:
    tables = find_tables(
        state.statement,  # type: ignore[arg-type]
        check_columns=True,
        include_aliases=True,
        include_joins=True,
        include_selects=True,
        include_crud=True,
    )
    tenant_tables = _tenant_tables()
    return any(getattr(table, "name", None) in tenant_tables for table in tables)


def _stamp_new_rows(session: Session, _ctx: Any, _instances: Any) -> None:
    tenant = session.info.get("tenant")
    if tenant == SYSTEM:
        return
    for obj in list(session.new) + list(session.dirty):
        if not isinstance(obj, TenantMixin):
            continue
        if not tenant:
            raise TenantNotSet("writing a tenant-owned row from a session bound to no tenant")
        if obj.company_id is None:
            obj.company_id = tenant
        elif obj.company_id != tenant:
            raise TenantNotSet("a row of another company cannot be written in this session")


def install_tenant_guard() -> None:
    """Register the hooks once per process (idempotent)."""
    global _installed
    if _installed:
        return
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


async def current_company(session: Any) -> Any:
    """The session's own company row (never "the first company in the table")."""
    from shared.models.company import Company

    return await session.get(Company, current_tenant(session))


def tenant_condition(session: Any, model: type[TenantMixin]) -> Any:
    """The company filter for a Core query (which the ORM hook does not see)."""
    tenant = session.info.get("tenant")
    if tenant == SYSTEM:
        return true()
    if not tenant:
        raise TenantNotSet("Core query on a tenant-owned table from a session bound to no tenant")
    return model.company_id == tenant
