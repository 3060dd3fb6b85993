"""A key revoked (or rescoped) through the admin API of one process is refused by another
process of the booking service within 1 s, although that process had it in its 30 s cache."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from shared.config import Settings
from shared.db.engine import Database
from tests.admin.support import ADMIN, create
from tests.support.factories import Tenant, create_tenant
from tests.support.servers import ServerGroup

WITHIN_S = 1.0
PROBE_EVERY_S = 0.05
PROBE = f"{ADMIN}/branches"


@pytest.fixture(scope="module")
async def second_process(settings: Settings) -> AsyncIterator[str]:
    """One real uvicorn process of the booking app on the same database and Redis."""
    env = {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url or "",
        "SERVICE_API_KEY": settings.service_api_key or "",
        "AUTH_CACHE_TTL_S": "30",
        "AUTH_REVOCATION_POLL_S": "0.5",
    }
    async with ServerGroup("services.booking.app:create", 1, env) as group:
        yield group.urls[0]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def warm(client: httpx.AsyncClient, url: str, key: str) -> None:
    """Requests that put the key into the other process's cache (200 each)."""
    for _ in range(3):
        response = await client.get(f"{url}{PROBE}", headers=bearer(key))
        assert response.status_code == 200, response.text


async def seconds_until(client: httpx.AsyncClient, url: str, key: str, status: int) -> float:
    """Seconds from now until the other process answers `status` to the key (probing every
    50 ms; gives up after 5 s)."""
    started = time.monotonic()
    while time.monotonic() - started < 5.0:
        response = await client.get(f"{url}{PROBE}", headers=bearer(key))
        if response.status_code == status:
            return time.monotonic() - started
        assert response.status_code == 200, response.text
        await asyncio.sleep(PROBE_EVERY_S)
    return float("inf")


async def test_a_key_revoked_in_one_process_is_refused_by_another_within_a_second(
    booking: httpx.AsyncClient, db: Database, second_process: str
) -> None:
    tenant: Tenant = await create_tenant(db)
    key = await create(booking, tenant, "api-keys", {"name": "to revoke", "scopes": ["admin"]})
    async with httpx.AsyncClient(timeout=5) as client:
        await warm(client, second_process, key["key"])

        revoked = await booking.delete(f"{ADMIN}/api-keys/{key['id']}", headers=tenant.headers)
        assert revoked.status_code == 204
        elapsed = await seconds_until(client, second_process, key["key"], 401)
        refused = await client.get(f"{second_process}{PROBE}", headers=bearer(key["key"]))

    assert elapsed <= WITHIN_S, f"still accepted {elapsed:.2f} s after the revocation"
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    # The revoking process itself refuses at once.
    again = await booking.get(PROBE, headers=bearer(key["key"]))
    assert again.status_code == 401


async def test_a_scope_change_reaches_another_process_within_a_second(
    booking: httpx.AsyncClient, db: Database, second_process: str
) -> None:
    tenant: Tenant = await create_tenant(db)
    key = await create(booking, tenant, "api-keys", {"name": "demoted", "scopes": ["admin"]})
    async with httpx.AsyncClient(timeout=5) as client:
        await warm(client, second_process, key["key"])

        patched = await booking.patch(
            f"{ADMIN}/api-keys/{key['id']}", headers=tenant.headers, json={"scopes": ["agent"]}
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["scopes"] == ["agent"]
        elapsed = await seconds_until(client, second_process, key["key"], 403)
        forbidden = await client.get(f"{second_process}{PROBE}", headers=bearer(key["key"]))

    assert elapsed <= WITHIN_S, f"still admin {elapsed:.2f} s after the scope change"
    assert forbidden.status_code == 403
    assert forbidden.json()["code"] == "forbidden"
