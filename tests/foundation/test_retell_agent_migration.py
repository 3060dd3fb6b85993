"""Migration 0008 claims every Retell agent id in use for its company (unique across all
companies) on SQLite and MariaDB; an id found on two companies' numbers stays with the one
that used it first, and the schema afterwards is exactly the models' (issue 13, item 5)."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from tests.foundation.test_reference_migration import NOW, _insert_row
from tests.support.migrations import check, migrate


def _seed(conn: sa.Connection) -> dict[str, str]:
    """Three companies in the schema of 0007: A and B both name agent_shared (A first)."""
    ids = {
        name: _insert_row(conn, "companies", name=f"Co {name}", timezone="Europe/Berlin")
        for name in "ABC"
    }
    numbers = [
        ("A", "+493011111111", "agent_shared", 0),
        ("A", "+493011111112", "agent_shared", 1),
        ("B", "+493022222222", "agent_shared", 2),
        ("B", "+493022222223", None, 3),
        ("C", "+493033333333", "agent_c", 4),
    ]
    for company, number, agent, minutes in numbers:
        _insert_row(
            conn,
            "phone_numbers",
            company_id=ids[company],
            number=number,
            branch_id=None,
            retell_agent_id=agent,
            created_at=NOW + timedelta(minutes=minutes),
        )
    return ids


async def test_agents_in_use_are_claimed_once(empty_database: str) -> None:
    await migrate(empty_database, "upgrade", "0007")
    engine = create_async_engine(empty_database)
    try:
        async with engine.begin() as conn:
            ids = await conn.run_sync(_seed)
        await migrate(empty_database, "upgrade", "0008")
        async with engine.connect() as conn:
            claimed = await conn.execute(sa.text("SELECT agent_id, company_id FROM retell_agents"))
            claims = {tuple(row) for row in claimed}
            listed = await conn.execute(
                sa.text("SELECT number, company_id, retell_agent_id FROM phone_numbers")
            )
            numbers = {tuple(row) for row in listed}
    finally:
        await engine.dispose()

    assert claims == {("agent_shared", ids["A"]), ("agent_c", ids["C"])}
    assert numbers == {
        ("+493011111111", ids["A"], "agent_shared"),
        ("+493011111112", ids["A"], "agent_shared"),
        ("+493022222222", ids["B"], None),  # B's number loses the agent A claimed first
        ("+493022222223", ids["B"], None),
        ("+493033333333", ids["C"], "agent_c"),
    }
    await migrate(empty_database, "upgrade", "head")
    await check(empty_database)
    await migrate(empty_database, "downgrade", "0007")
    await migrate(empty_database, "upgrade", "head")
