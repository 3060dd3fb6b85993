"""The effective-config cache: never stale across processes, and never a reason to fail."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from services.policy.app import create
from services.policy.service import NAMESPACE, effective
from shared.config import Settings
from shared.db.engine import Database
from shared.hierarchy import effective as hierarchy
from shared.hierarchy.cache import ConfigCache
from shared.hierarchy.chain import Chain
from shared.hierarchy.queries import load_levels
from shared.hierarchy.reads import snapshot_is_current
from shared.models import PolicyConfiguration
from shared.redis.connection import redis_client
from tests.support.factories import Salon, create_salon, create_tenant, next_weekday

DOWN = "redis://127.0.0.1:1/0"


@asynccontextmanager
async def policy_process(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """Another replica of the policy service: its own app, engine and Redis connection."""
    app = create(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://policy.test") as client:
            yield client


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = redis_client(settings=settings)
    yield client
    await client.aclose()


def lookups(outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "cache_requests_total", {"cache": NAMESPACE, "outcome": outcome}
    )
    return value or 0.0


async def set_hours(client: httpx.AsyncClient, salon: Salon, hours: int) -> None:
    response = await client.put(
        f"/v1/policies/branch/{salon.branch_id}/cancellation",
        json={"hours_before": hours},
        headers=salon.headers,
    )
    assert response.status_code in (200, 201), response.text


async def effective_hours(client: httpx.AsyncClient, salon: Salon) -> str:
    response = await client.get(
        "/v1/policies/effective",
        params={"policy_type": "cancellation", "staff_id": salon.staff_ids[0]},
        headers=salon.headers,
    )
    assert response.status_code == 200, response.text
    hours: str = response.json()["config"]["hours_before"]
    return hours


async def deadline(client: httpx.AsyncClient, salon: Salon) -> str:
    """A what-if evaluation (a POST: it fills the cache on every backend)."""
    day = next_weekday(2)
    response = await client.post(
        "/v1/policies/evaluate",
        json={
            "service_id": salon.service_id,
            "staff_id": salon.staff_ids[0],
            "start": f"{day.isoformat()}T10:00:00+00:00",
            "at": f"{day.isoformat()}T00:00:00+00:00",
            "action": "cancel",
        },
        headers=salon.headers,
    )
    assert response.status_code == 200, response.text
    value: str = response.json()["deadline"]
    return value


async def test_a_write_in_one_process_is_seen_by_the_next_read_in_another(
    settings: Settings, db: Database, backend: str
) -> None:
    salon = await create_salon(db)
    async with policy_process(settings) as first, policy_process(settings) as second:
        await set_hours(first, salon, 2)
        assert await effective_hours(second, salon) == "2"
        before = await deadline(second, salon)
        hits = lookups("hit")
        assert await deadline(second, salon) == before
        # Served from the cache on MariaDB; a SQLite read transaction's snapshot may predate
        # the version it read, so there evaluation is never cached (see snapshot_is_current).
        assert lookups("hit") == hits + (1 if backend == "mysql" else 0)

        await set_hours(first, salon, 5)  # the other replica writes
        assert await effective_hours(second, salon) == "5"
        assert await deadline(second, salon) != before
        await set_hours(second, salon, 7)
        assert await effective_hours(first, salon) == "7"


async def test_reads_and_writes_work_with_redis_down(settings: Settings, db: Database) -> None:
    salon = await create_salon(db)
    down = settings.model_copy(update={"redis_url": DOWN})
    async with policy_process(down) as client, policy_process(settings) as healthy:
        errors = lookups("error")
        await set_hours(client, salon, 3)
        assert await effective_hours(client, salon) == "3"
        assert (await deadline(client, salon))[-6:] in ("+01:00", "+02:00")  # branch zone
        assert lookups("error") >= errors + 2
        await set_hours(healthy, salon, 4)
        assert await effective_hours(client, salon) == "4"
        ready = await client.get("/health/ready")
        assert (ready.status_code, ready.json()["degraded"]) == (200, ["redis"])  # ADR 0018


async def test_a_reader_never_files_an_old_value_under_a_new_version(
    redis: Redis, db: Database
) -> None:
    tenant = await create_tenant(db)
    cache = ConfigCache(redis, "test")
    version, value = await cache.read(tenant.company_id, "k")
    assert value is None and version is not None
    # The reader loaded "old" before the writer committed; the writer bumps after its commit.
    await cache.bump(tenant.company_id)
    await cache.write(tenant.company_id, version, "k", {"v": "old"})
    new_version, value = await cache.read(tenant.company_id, "k")
    assert value is None
    assert int(new_version or 0) == int(version) + 1
    await cache.write(tenant.company_id, new_version or "", "k", {"v": "new"})
    assert await cache.read(tenant.company_id, "k") == (new_version, {"v": "new"})
    assert await redis.ttl(cache.entry_key(tenant.company_id, new_version or "", "k")) > 290


async def test_a_lost_version_key_never_revives_old_entries(redis: Redis, db: Database) -> None:
    tenant = await create_tenant(db)
    cache = ConfigCache(redis, "test")
    version, _ = await cache.read(tenant.company_id, "k")
    assert version is not None
    await cache.write(tenant.company_id, version, "k", {"v": "old"})
    await redis.delete(cache.version_key(tenant.company_id))  # evicted or flushed
    await cache.bump(tenant.company_id)
    fresh, value = await cache.read(tenant.company_id, "k")
    assert value is None and int(fresh or 0) > int(version)


async def test_an_old_snapshot_is_answered_but_not_cached(
    redis: Redis, db: Database, backend: str
) -> None:
    salon = await create_salon(db)
    company = salon.tenant.company_id
    cache = ConfigCache(redis, NAMESPACE)
    chain = Chain(company, salon.branch_id)

    async def write(hours: str) -> None:
        async with db.transaction(company) as session:
            session.add(
                PolicyConfiguration(
                    level="branch",
                    entity_id=salon.branch_id,
                    policy_type="cancellation",
                    config={"hours_before": hours},
                )
            )
        await cache.bump(company)

    async with db.transaction(company, write=False) as reader:
        assert await load_levels(reader, PolicyConfiguration, chain, {}) == {}  # snapshot
        await write("3")  # commits and bumps while the reader's transaction is open
        seen = await effective(reader, cache, company, "cancellation", branch_id=salon.branch_id)
        current = await snapshot_is_current(reader)
    assert current is (backend == "mysql")
    assert seen.config["hours_before"] == ("3" if current else "24")
    async with db.transaction(company, write=False) as later:
        fresh = await effective(later, cache, company, "cancellation", branch_id=salon.branch_id)
    assert (fresh.config["hours_before"], fresh.sources["hours_before"]) == ("3", "branch")
    async with db.transaction(company, write=True) as writer:
        assert await snapshot_is_current(writer)


async def test_generic_over_the_table(redis: Redis, db: Database) -> None:
    """The notifications table plugs in with its own filters and row shape."""
    from shared.models import NotificationConfiguration

    salon = await create_salon(db)
    company = salon.tenant.company_id
    async with db.transaction(company) as session:
        for level, entity, enabled in (
            ("company", company, True),
            ("staff", salon.staff_ids[0], False),
        ):
            session.add(
                NotificationConfiguration(
                    level=level,
                    entity_id=entity,
                    event_type="booking_confirmed",
                    channel="sms",
                    enabled=enabled,
                )
            )

    def merge(levels: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for level in ("company", "branch", "service", "staff"):
            merged.update(levels.get(level, {}))
        return merged

    cache = ConfigCache(redis, "notifications")
    chain = Chain(company, salon.branch_id, None, salon.staff_ids[0])
    filters = {"event_type": "booking_confirmed", "channel": "sms"}
    for _ in range(2):
        async with db.transaction(company) as session:
            result = await hierarchy.effective(
                session,
                cache,
                chain,
                NotificationConfiguration,
                filters,
                merge,
                to_config=lambda row: {"enabled": row.enabled},
            )
        assert result == {"enabled": False}
