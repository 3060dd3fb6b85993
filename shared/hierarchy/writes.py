"""Writes of one scope's config row (level, entity and the table's own keys) and its audit."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession


async def scoped_row(
    session: AsyncSession, model: Any, scope: Mapping[str, Any], *, lock: bool = False
) -> Any:
    """The stored config row of one scope (`scope`: column -> value, e.g. level, entity_id,
    policy_type) of the session's company, row-locked with `lock`; None when there is none."""
    statement = sa.select(model).where(
        *(getattr(model, column) == value for column, value in scope.items())
    )
    if lock:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return (await session.scalars(statement)).first()


async def upsert_scoped(
    session: AsyncSession,
    model: Any,
    scope: Mapping[str, Any],
    fill: Callable[[Any], None],
) -> tuple[Any, Mapping[str, Any] | None]:
    """Insert or update one scope's row (locked), `fill` setting its values; returns the row
    and its config before (None when the row is new). A concurrent first insert of the same
    scope (UNIQUE) that commits in between turns this into an update of that row."""
    row = await scoped_row(session, model, scope, lock=True)
    if row is None:
        row = model(**scope)
        fill(row)
        try:
            async with session.begin_nested():
                session.add(row)
            return row, None
        except IntegrityError:
            row = await scoped_row(session, model, scope, lock=True)
            assert row is not None
    before = dict(row.config or {})
    fill(row)
    return row, before


def record_change(
    session: AsyncSession,
    change_model: Any,
    scope: Mapping[str, Any],
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    changed_by: str,
) -> None:
    """Add an audit row (who, when, before, after) of one scope's config to the transaction."""
    session.add(
        change_model(
            **scope,
            before=None if before is None else dict(before),
            after=None if after is None else dict(after),
            changed_by=changed_by,
            changed_at=datetime.now(UTC),
        )
    )
