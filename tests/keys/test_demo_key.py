"""seed-demo with a key dir (what the CLI passes): the key printed first keeps working."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
from sqlalchemy import func, select

from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.models import ApiKey
from shared.security.api_keys import verify_key
from tools.demo import DEMO_KEY_NAME, seed_demo
from tools.key_store import demo_key_file


async def active_demo_keys(db: Database, company_id: str) -> int:
    async with db.transaction(SYSTEM, write=False) as session:
        count = await session.scalar(
            select(func.count())
            .select_from(ApiKey)
            .where(
                ApiKey.company_id == company_id,
                ApiKey.name == DEMO_KEY_NAME,
                ApiKey.revoked_at.is_(None),
            ),
            execution_options={"skip_tenant_filter": True},
        )
    return int(count or 0)


async def test_seed_twice_keeps_the_first_key_working(
    booking: httpx.AsyncClient, db: Database, tmp_path: Path
) -> None:
    name = f"Demo Salon {uuid.uuid4().hex[:10]}"
    first = await seed_demo(db, name, tmp_path)
    second = await seed_demo(db, name, tmp_path)

    assert (first.new_key, second.new_key) == (True, False)
    assert second.as_json() == first.as_json()
    async with db.transaction(SYSTEM, write=False) as session:
        verified = await verify_key(session, first.api_key)
    assert verified is not None and verified.company_id == first.company_id
    answer = await booking.get(
        "/v1/admin/branches", headers={"Authorization": f"Bearer {first.api_key}"}
    )
    assert answer.status_code == 200, answer.text
    assert {b["id"] for b in answer.json()["items"]} == {b.id for b in first.branches}
    assert await active_demo_keys(db, first.company_id) == 1

    # Another database (or a lost file) behind the kept key: a new key, kept from then on.
    demo_key_file(tmp_path, first.company_id).write_text("ak_000000000000_" + "x" * 43)
    third = await seed_demo(db, name, tmp_path)
    assert third.new_key and third.api_key != first.api_key
    assert demo_key_file(tmp_path, first.company_id).read_text().strip() == third.api_key
    assert await active_demo_keys(db, first.company_id) == 1, "earlier demo keys revoked"
