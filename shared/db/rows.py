"""New rows without the unit of work: one built-once INSERT per table (issue 17).

`session.add()` + flush costs the unit of work's bookkeeping on every booking (state
tracking, dependency sorting, a statement keyed and compiled per flush), more than the INSERT
itself. `insert_new` writes transient objects with the table's INSERT (the same columns and
types, the columns' Python defaults applied to the object first), then attaches them to the
session as if loaded: they are persistent, and a later change to one is flushed as an UPDATE
like any loaded row's. The tenancy hook checks the INSERT as any other (`company_id` of each
row must be the session's company); set `company_id` explicitly, the flush's stamping does not
run for rows written here.
"""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapper, make_transient_to_detached

from shared.models.base import Base


@functools.cache
def _insert(table: sa.Table) -> sa.Insert:
    return table.insert()


def _default(default: Any) -> Any:
    if default.is_callable:  # SQLAlchemy wraps the column's function to take a context
        return default.arg(None)
    if default.is_scalar:
        return default.arg
    raise ValueError("insert_new applies Python defaults only (no sequences or SQL defaults)")


def _row(obj: Base) -> tuple[sa.Table, dict[str, Any]]:
    mapper: Mapper[Any] = sa.inspect(type(obj))
    state = sa.inspect(obj)
    if not state.transient:
        raise ValueError("insert_new writes new (transient) objects only")
    values = obj.__dict__
    row: dict[str, Any] = {}
    for prop in mapper.column_attrs:
        column = prop.columns[0]
        if prop.key not in values:  # every column set: nothing is left expired to load
            setattr(obj, prop.key, None if column.default is None else _default(column.default))
        row[column.key] = values.get(prop.key)
    table = mapper.local_table
    assert isinstance(table, sa.Table)
    return table, row


async def insert_new(session: AsyncSession, *objects: Base) -> None:
    """INSERT `objects` (transient, all columns set or defaulted) and make them persistent in
    `session` without a flush. Rows of one table go in one executemany, in the given order."""
    by_table: dict[sa.Table, list[dict[str, Any]]] = {}
    for obj in objects:
        table, row = _row(obj)
        by_table.setdefault(table, []).append(row)
    for table, rows in by_table.items():
        await session.execute(_insert(table), rows[0] if len(rows) == 1 else rows)
    for obj in objects:
        make_transient_to_detached(obj)
        session.add(obj)
