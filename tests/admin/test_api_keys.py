"""API keys: the plaintext is shown once, the new key works, a revoked key is 401."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select

from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.models import ApiKey
from shared.security.api_keys import hash_key
from tests.admin.support import ADMIN, assert_problem, create, items
from tests.support.factories import Tenant, create_platform_key

KEYS = f"{ADMIN}/api-keys"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_plaintext_is_shown_only_in_the_post_answer(
    booking: httpx.AsyncClient, db: Database, tenant: Tenant
) -> None:
    created = await create(
        booking, tenant, "api-keys", {"name": "Retell", "scopes": ["agent", "agent", "service"]}
    )
    plaintext = created["key"]
    assert plaintext.startswith(f"ak_{created['prefix']}_")
    assert {k: created[k] for k in ("name", "scopes", "company_id", "revoked_at")} == {
        "name": "Retell",
        "scopes": ["agent", "service"],
        "company_id": tenant.company_id,
        "revoked_at": None,
    }

    got = await booking.get(f"{KEYS}/{created['id']}", headers=tenant.headers)
    listed = await booking.get(KEYS, headers=tenant.headers)
    digest = hash_key(plaintext)
    for response in (got, listed):
        assert response.status_code == 200
        assert plaintext not in response.text
        assert digest not in response.text
        assert "key_hash" not in response.text
    assert "key" not in got.json()
    assert got.json() == {k: v for k, v in created.items() if k != "key"}

    async with db.transaction(SYSTEM, write=False) as session:
        row = (await session.execute(select(ApiKey).where(ApiKey.id == created["id"]))).scalar_one()
    assert row.key_hash == digest


async def test_new_key_authenticates_and_revoked_key_is_401(
    booking: httpx.AsyncClient, tenant: Tenant
) -> None:
    admin = await create(booking, tenant, "api-keys", {"name": "second admin", "scopes": ["admin"]})
    agent = await create(booking, tenant, "api-keys", {"name": "agent", "scopes": ["agent"]})
    ok = await booking.get(f"{ADMIN}/branches", headers=bearer(admin["key"]))
    assert ok.status_code == 200, ok.text
    # authenticated, but the agent scope does not open the admin API
    assert_problem(
        await booking.get(f"{ADMIN}/branches", headers=bearer(agent["key"])), 403, "forbidden"
    )

    revoked = await booking.delete(f"{KEYS}/{admin['id']}", headers=tenant.headers)
    assert revoked.status_code == 204
    assert_problem(
        await booking.get(f"{ADMIN}/branches", headers=bearer(admin["key"])), 401, "unauthorized"
    )
    shown = (await booking.get(f"{KEYS}/{admin['id']}", headers=tenant.headers)).json()
    assert datetime.fromisoformat(shown["revoked_at"]) <= datetime.now(UTC)
    again = await booking.delete(f"{KEYS}/{admin['id']}", headers=tenant.headers)
    assert again.status_code == 204
    assert (await booking.get(f"{KEYS}/{admin['id']}", headers=tenant.headers)).json() == shown
    # the caller's own key is untouched
    assert (await booking.get(KEYS, headers=tenant.headers)).status_code == 200


async def test_list_patch_and_expiry(
    booking: httpx.AsyncClient, db: Database, tenant: Tenant
) -> None:
    await create_platform_key(db)
    expires = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    created = await create(
        booking,
        tenant,
        "api-keys",
        {"name": "temp", "scopes": ["operator"], "expires_at": expires.isoformat()},
    )
    assert datetime.fromisoformat(created["expires_at"]) == expires
    listed = await items(booking, tenant, "api-keys")
    assert [k["name"] for k in listed] == ["temp", "test"]  # newest first; no platform keys
    assert {k["company_id"] for k in listed} == {tenant.company_id}

    url = f"{KEYS}/{created['id']}"
    patched = await booking.patch(
        url, headers=tenant.headers, json={"name": "ops", "scopes": ["operator", "service"]}
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["name"], patched.json()["scopes"]) == ("ops", ["operator", "service"])
    for patch, field in [
        ({"scopes": ["root"]}, "scopes"),
        ({"name": None}, "name"),
        ({"key_hash": "x"}, "key_hash"),
    ]:
        response = await booking.patch(url, headers=tenant.headers, json=patch)
        assert_problem(response, 422, "validation_error", field)
    assert (await booking.get(url, headers=tenant.headers)).json() == patched.json()
    assert_problem(
        await booking.get(f"{KEYS}/no-such-key", headers=tenant.headers), 404, "not_found"
    )
