"""Bench section `notifications`: the effective notification config of 50 branches, warm.

As the seeds' production test 3 (`$branch->getEffectiveNotificationConfig('booking_confirmed',
'email')` for 50 branches): in-process, against MariaDB and Redis, through the same code the
notify job and `GET /v1/notification-configs/effective` use (the chain's SELECT plus the
versioned Redis cache). Warm: one pass fills the cache, the measured passes hit it.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

from services.notifications.configs import queries as config_store
from services.notifications.configs.queries import NAMESPACE
from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.hierarchy.cache import ConfigCache
from shared.models import Branch, Company, NotificationConfiguration
from tests.bench.load import percentile
from tests.bench.report import Figure

BRANCHES = 50
ROUNDS = 40


async def _company(db: Database) -> tuple[str, list[str]]:
    async with db.transaction(SYSTEM) as session:
        company = Company(name=f"Bench notifications {time.time_ns()}")
        session.add(company)
        await session.flush()
    async with db.transaction(company.id) as session:
        branches = [
            Branch(name=f"Filiale {n:02d}", timezone="Europe/Berlin") for n in range(BRANCHES)
        ]
        session.add_all(branches)
        await session.flush()
        session.add(
            NotificationConfiguration(
                level="company",
                entity_id=company.id,
                event_type="booking_confirmed",
                channel="email",
                config={"recipients": ["customer", "branch"]},
            )
        )
        for branch in branches[::5]:  # every fifth branch refines the company's choice
            session.add(
                NotificationConfiguration(
                    level="branch",
                    entity_id=branch.id,
                    event_type="booking_confirmed",
                    channel="email",
                    config={"enabled": False},
                )
            )
        return company.id, [branch.id for branch in branches]


async def effective_figures(url: str, redis_url: str) -> list[Figure]:
    db = Database(settings=Settings(database_url=url, environment="test"))
    redis = Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        company_id, branch_ids = await _company(db)
        cache = ConfigCache(redis, NAMESPACE)
        samples: list[float] = []
        disabled = 0
        for round_ in range(ROUNDS + 1):
            for branch_id in branch_ids:
                async with db.transaction(company_id, write=False) as session:
                    started = time.perf_counter()
                    _, result = await config_store.resolve_effective_config(
                        session,
                        cache,
                        company_id,
                        "booking_confirmed",
                        "email",
                        branch_id=branch_id,
                    )
                    elapsed = (time.perf_counter() - started) * 1000
                if round_:  # round 0 warms the cache
                    samples.append(elapsed)
                    disabled += not result["config"]["enabled"]
        assert disabled == ROUNDS * BRANCHES // 5, disabled
        p50, p95, p99 = (percentile(samples, p) for p in (50, 95, 99))
        print(
            f"  effective notification config, {BRANCHES} branches x {ROUNDS} warm rounds"
            f" ({len(samples)} lookups, in-process, MariaDB + Redis):"
            f" p50 {p50:.2f} ms, p95 {p95:.2f} ms, p99 {p99:.2f} ms"
        )
        return [Figure("notification config effective p95 (warm)", p95, None, 2.0, "ms")]
    finally:
        await redis.aclose()
        await db.dispose()
