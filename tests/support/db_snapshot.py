"""Every table's full contents, read straight from the database, to prove a request changed
nothing: `snapshot` before and after, `differences` names what moved.

The reads go through an engine of their own (no session hooks, no tenant filter), so they see
every company's rows, and the tables are reflected from the database itself: a table added by a
later migration is compared without anyone listing it here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

Snapshot = dict[str, list[tuple[Any, ...]]]


@asynccontextmanager
async def snapshot_engine(database_url: str) -> AsyncIterator[tuple[AsyncEngine, list[sa.Table]]]:
    """An engine for snapshots and the database's tables (reflected once)."""
    engine = create_async_engine(database_url, poolclass=NullPool)
    metadata = sa.MetaData()
    try:
        async with engine.connect() as conn:
            await conn.run_sync(metadata.reflect)
        yield engine, sorted(metadata.tables.values(), key=lambda table: table.name)
    finally:
        await engine.dispose()


def _sort_key(row: tuple[Any, ...]) -> str:
    return repr(row)


async def snapshot(engine: AsyncEngine, tables: list[sa.Table]) -> Snapshot:
    """Every row of every table (all columns), in a stable order."""
    taken: Snapshot = {}
    async with engine.connect() as conn:
        for table in tables:
            rows = (await conn.execute(sa.select(table))).all()
            taken[table.name] = sorted((tuple(row) for row in rows), key=_sort_key)
        await conn.rollback()
    return taken


def differences(before: Snapshot, after: Snapshot, limit: int = 5) -> list[str]:
    """What changed between two snapshots, one line per table (empty when nothing did)."""
    found = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name, []), after.get(name, [])
        if old == new:
            continue
        old_reprs = {repr(row) for row in old}
        new_reprs = {repr(row) for row in new}
        gone = sorted(old_reprs - new_reprs)[:limit]
        added = sorted(new_reprs - old_reprs)[:limit]
        found.append(
            f"{name}: {len(old)} -> {len(new)} rows; removed/changed {gone}; added/changed {added}"
        )
    return found


async def company_snapshot(
    engine: AsyncEngine, tables: list[sa.Table], company_id: str
) -> Snapshot:
    """Every row of one company (tables with a `company_id`, and its `companies` row)."""
    taken: Snapshot = {}
    async with engine.connect() as conn:
        for table in tables:
            if table.name == "companies":
                where = table.c.id == company_id
            elif "company_id" in table.c:
                where = table.c.company_id == company_id
            else:
                continue
            rows = (await conn.execute(sa.select(table).where(where))).all()
            taken[table.name] = sorted((tuple(row) for row in rows), key=_sort_key)
        await conn.rollback()
    return taken
