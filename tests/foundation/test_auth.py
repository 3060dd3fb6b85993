"""API keys: 401 without a valid key, scopes enforced, platform keys need X-Company-ID."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.models import ApiKey
from shared.security.api_keys import hash_key
from tests.support.factories import create_platform_key, create_tenant

PROBE = "/v1/admin/branches"


@pytest.mark.parametrize(
    "header",
    [None, "Bearer nonsense", "Basic abc", "Bearer ak_000000000000_" + "x" * 43, "Bearer "],
)
async def test_missing_or_wrong_key_is_401(booking: httpx.AsyncClient, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = await booking.get(PROBE, headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "unauthorized"


async def test_key_is_stored_hashed_only(db: Database) -> None:
    tenant = await create_tenant(db)
    async with db.transaction(SYSTEM, write=False) as session:
        key = (
            await session.execute(select(ApiKey).where(ApiKey.company_id == tenant.company_id))
        ).scalar_one()
    assert tenant.admin_key not in (key.key_hash, key.prefix)
    assert key.key_hash == hash_key(tenant.admin_key)
    assert len(key.key_hash) == 64


async def test_valid_key_is_accepted(booking: httpx.AsyncClient, db: Database) -> None:
    tenant = await create_tenant(db)
    response = await booking.get(PROBE, headers=tenant.headers)
    assert response.status_code == 200, response.text


async def test_tampered_key_is_401(booking: httpx.AsyncClient, db: Database) -> None:
    tenant = await create_tenant(db)
    tampered = tenant.admin_key[:-1] + ("A" if tenant.admin_key[-1] != "A" else "B")
    response = await booking.get(PROBE, headers={"Authorization": f"Bearer {tampered}"})
    assert response.status_code == 401


async def test_scope_is_enforced(booking: httpx.AsyncClient, db: Database) -> None:
    tenant = await create_tenant(db, scopes=["agent"])
    response = await booking.get(PROBE, headers=tenant.headers)
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"


async def test_platform_key_needs_company_header(booking: httpx.AsyncClient, db: Database) -> None:
    tenant = await create_tenant(db)
    platform = await create_platform_key(db)
    auth = {"Authorization": f"Bearer {platform}"}
    assert (await booking.get(PROBE, headers=auth)).status_code == 401
    unknown = await booking.get(PROBE, headers={**auth, "X-Company-ID": "no-such-company"})
    assert unknown.status_code == 404
    ok = await booking.get(PROBE, headers={**auth, "X-Company-ID": tenant.company_id})
    assert ok.status_code == 200, ok.text
