"""The hierarchy's reads: a target's chain (one statement), an entity check, the levels' rows."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.scoped import scoped
from shared.db.tenancy import PER_CALL
from shared.errors import InvalidInput, NotFound
from shared.hierarchy.chain import LEVELS, Chain
from shared.hierarchy.reads import Reads
from shared.models import Branch, Service, Staff


@functools.cache
def _chain_statement(staff: bool, service: bool, branch: bool) -> sa.Select[Any]:
    """One SELECT of scalar subqueries for the ids given (built once per combination, scoped
    PER_CALL: hot reads run it on the session's connection or the raw pool, sparing
    SQLAlchemy the per-call construction, cache key and ORM result adaptation)."""
    columns: list[sa.ColumnElement[Any]] = []
    if staff:
        columns.append(
            sa.select(Staff.branch_id)
            .where(Staff.id == sa.bindparam("staff_id"))
            .scalar_subquery()
            .label("staff_branch")
        )
    if service:
        # '' marks a service offered by every branch; NULL marks no such service.
        columns.append(
            sa.select(sa.func.coalesce(Service.branch_id, ""))
            .where(Service.id == sa.bindparam("service_id"))
            .scalar_subquery()
            .label("service_branch")
        )
    if branch:
        columns.append(
            sa.select(Branch.id)
            .where(Branch.id == sa.bindparam("branch_id"))
            .scalar_subquery()
            .label("branch")
        )
    return scoped(sa.select(*columns), PER_CALL)


def _chain_from(found: Mapping[str, Any], company_id: str, ids: Mapping[str, str | None]) -> Chain:
    """The chain the chain statement's row gives, or the 404/422 for the ids it refuses."""
    staff_id, service_id, branch_id = ids["staff_id"], ids["service_id"], ids["branch_id"]
    if staff_id and found["staff_branch"] is None:
        raise NotFound("No such staff member.", field="staff_id")
    if service_id and found["service_branch"] is None:
        raise NotFound("No such service.", field="service_id")
    if branch_id and found["branch"] is None:
        raise NotFound("No such branch.", field="branch_id")
    staff_branch: str | None = found["staff_branch"] if staff_id else None
    service_branch: str | None = (found["service_branch"] or None) if service_id else None
    branch = branch_id or staff_branch or service_branch
    if staff_branch is not None and staff_branch != branch:
        raise InvalidInput("The staff member works at another branch.", field="staff_id")
    if service_branch is not None and service_branch != branch:
        raise InvalidInput("The service is not offered at that branch.", field="service_id")
    return Chain(company_id, branch, service_id or None, staff_id or None)


async def resolve_chain(
    source: Reads | AsyncSession,
    company_id: str,
    *,
    branch_id: str | None = None,
    service_id: str | None = None,
    staff_id: str | None = None,
) -> Chain:
    """Complete a target's chain in one query: staff -> its branch, service -> its branch if any.

    An id not found in the company: 404 naming the field. Ids that contradict each other (a
    staff member or a branch-bound service of another branch): 422 naming the field.
    """
    if not (branch_id or service_id or staff_id):
        return Chain(company_id)
    ids = {"branch_id": branch_id, "service_id": service_id, "staff_id": staff_id}
    statement = _chain_statement(bool(staff_id), bool(service_id), bool(branch_id))
    row = await Reads.of(source, company_id).first(statement, dict(ids))
    return _chain_from(row._asdict(), company_id, ids)


async def check_entity(session: AsyncSession, company_id: str, level: str, entity_id: str) -> None:
    """404 unless `entity_id` is an entity of `level` in the company (the company itself at
    company level)."""
    if level not in LEVELS:
        raise InvalidInput(f"level must be one of {', '.join(LEVELS)}", field="level")
    if level == "company":
        exists = entity_id == company_id
    else:
        model: Any = {"branch": Branch, "service": Service, "staff": Staff}[level]
        exists = (
            await session.scalar(
                sa.select(model.id).where(model.id == entity_id, model.company_id == company_id)
            )
        ) is not None
    if not exists:
        raise NotFound(f"No such {level}.", field="entity_id")


def config_column(row: Any) -> Mapping[str, Any]:
    """A row's stored config (the `to_config` of tables with a `config` column)."""
    config: Mapping[str, Any] = row.config
    return config


async def load_levels(
    session: AsyncSession,
    model: Any,
    chain: Chain,
    filters: Mapping[str, Any],
    to_config: Callable[[Any], Mapping[str, Any]] = config_column,
) -> dict[str, Mapping[str, Any]]:
    """The stored config of each level of the chain, in one query.

    `model` is a table with `company_id`, `level`, `entity_id` columns; `filters` (column name
    -> value) select one row per level, e.g. `{"policy_type": "cancellation"}`.
    """
    scopes = [
        sa.and_(model.level == level, model.entity_id == entity) for level, entity in chain.levels()
    ]
    statement = (
        sa.select(model)
        .where(
            model.company_id == chain.company_id,
            sa.or_(*scopes),
            *(getattr(model, column) == value for column, value in filters.items()),
        )
        .execution_options(populate_existing=True)
    )
    rows = (await session.scalars(statement)).all()
    return {row.level: to_config(row) for row in rows}
