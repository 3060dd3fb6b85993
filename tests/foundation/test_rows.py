"""`insert_new`: new rows by a built-once INSERT, persistent afterwards, tenancy-checked."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from shared.db.engine import Database
from shared.db.rows import insert_new
from shared.db.types import utcnow
from shared.errors import TenantNotSet
from shared.models import Branch, OutboxEvent
from tests.support.factories import create_tenant


async def test_rows_get_their_defaults_and_stay_persistent_for_later_changes(
    db: Database,
) -> None:
    a = await create_tenant(db)
    b = await create_tenant(db)
    async with db.transaction(a.company_id) as session:
        nord = Branch(company_id=a.company_id, name="Nord", timezone="Europe/Berlin")
        sued = Branch(company_id=a.company_id, name="Süd", timezone="Europe/Berlin")
        event = OutboxEvent(
            company_id=a.company_id,
            queue="q",
            job_name="j",
            payload={"n": 1},
            available_at=utcnow(),
        )
        await insert_new(session, nord, sued)
        assert sa.inspect(nord).persistent and sa.inspect(sued).persistent
        assert not session.new and not session.dirty
        assert len(nord.id) == 36 and nord.id != sued.id
        assert (nord.country, nord.active, nord.city) == ("DE", True, None)
        assert nord.created_at is not None and nord.updated_at is not None
        with pytest.raises(ValueError, match="transient"):
            await insert_new(session, nord)
        nord.city = "Hamburg"  # a change after the INSERT: flushed as an UPDATE at commit
        await insert_new(session, event)
        assert (event.status, event.attempts) == ("pending", 0)
    async with db.transaction(a.company_id, write=False) as session:
        rows = {r.name: r for r in (await session.execute(select(Branch))).scalars()}
        assert {name: row.city for name, row in rows.items()} == {"Nord": "Hamburg", "Süd": None}
        stored = await session.get(OutboxEvent, event.id)
        assert stored is not None and stored.payload == {"n": 1}
    async with db.transaction(b.company_id, write=False) as session:
        assert (await session.execute(select(Branch))).scalars().all() == []


async def test_a_row_of_another_company_is_refused_and_nothing_is_written(db: Database) -> None:
    a = await create_tenant(db)
    b = await create_tenant(db)
    with pytest.raises(TenantNotSet, match="another company"):
        async with db.transaction(a.company_id) as session:
            await insert_new(
                session,
                Branch(company_id=a.company_id, name="Own", timezone="Europe/Berlin"),
                Branch(company_id=b.company_id, name="Foreign", timezone="Europe/Berlin"),
            )
    for tenant in (a, b):
        async with db.transaction(tenant.company_id, write=False) as session:
            assert (await session.execute(select(Branch))).scalars().all() == []
