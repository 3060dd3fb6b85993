"""A booking made in Cal.com while our database is unavailable (issue 14, item 4; ADR 0019):
its webhook is refused (503 database_unavailable: Cal.com never sends it again), reconciliation
cannot run meanwhile and moves no mark, and the first run after the database's return applies
the booking, exactly once: one appointment, one set of follow-ups, also when runs repeat.

MariaDB: the second `mariadbd` stopped and started again. SQLite: another process holds the
write lock past the busy timeout (the outage SQLite knows).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis, create_pool

from services.webhooks.calcom.reconciliation import reconcile_all, reconcile_calcom
from shared.config import Settings
from shared.db.engine import Database
from shared.jobs.queue import redis_settings
from shared.security.outbound import outbound_client
from tests.faults.mariadb_support import (
    MariaDB,
    leave_queues_as_found,
    mariadb,
    outage_settings,
    running_again,
)
from tests.faults.test_sqlite_locked import WriteLock
from tests.support.fake_calcom import FakeCalcom
from tests.support.migrations import migrate
from tests.webhooks import calcom_headers, webhooks_client
from tests.webhooks.conftest import ORGANIZER, appointments, create_calcom_salon, outbox
from tests.webhooks.test_reconciliation import created_webhook, mark_of

__all__ = ["leave_queues_as_found", "mariadb"]  # fixtures of mariadb_support
pytestmark = pytest.mark.usefixtures("leave_queues_as_found")

KEY = "cal_live_outage"
SECRET = "whsec"  # create_calcom_salon's webhook secret
EVENT_TYPE = 57


@pytest.fixture(params=["sqlite", "mysql"])
def outage_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def outage_settings_for(
    outage_backend: str,
    request: pytest.FixtureRequest,
    redis_url: str,
    tmp_path: Path,
) -> Settings:
    if outage_backend == "mysql":
        server: MariaDB = request.getfixturevalue("mariadb")
        return outage_settings(server, redis_url)
    path = tmp_path / "reconcile.db"
    await migrate(f"sqlite+aiosqlite:///{path}", "upgrade", "head")
    return Settings(
        environment="test",
        database_url=f"sqlite+aiosqlite:///{path}",
        redis_url=redis_url,
        log_json=False,
        log_level="WARNING",
        allow_private_outbound_urls=True,
        sqlite_busy_timeout_ms=300,
    )


@contextlib.contextmanager
def database_down(
    outage_backend: str, request: pytest.FixtureRequest, settings: Settings
) -> Iterator[None]:
    if outage_backend == "mysql":
        server: MariaDB = request.getfixturevalue("mariadb")
        with running_again(server):
            server.kill()
            yield
        return
    with WriteLock(Path(settings.database_url.removeprefix("sqlite+aiosqlite:///"))):
        yield


@pytest.fixture
async def arq(outage_settings_for: Settings) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(redis_settings(outage_settings_for))
    yield pool
    await pool.aclose()


async def test_a_booking_made_in_calcom_during_the_outage_arrives_exactly_once(
    outage_backend: str,
    outage_settings_for: Settings,
    arq: ArqRedis,
    request: pytest.FixtureRequest,
) -> None:
    settings = outage_settings_for
    db = Database(settings=settings)
    async with (
        FakeCalcom(api_keys=[KEY]) as fake,
        outbound_client(settings, timeout=httpx.Timeout(10.0)) as http,
        webhooks_client(settings) as webhooks,
    ):
        try:
            fake.add_event_type(EVENT_TYPE, 30, ORGANIZER)
            cs = await create_calcom_salon(
                db, event_type_id=EVENT_TYPE, base_url=fake.url, api_key=KEY
            )
            company = cs.company_id

            async def run() -> dict[str, int]:
                return await reconcile_all(db, arq, http, settings, [company], budget_s=10)

            assert await run() == {"companies": 1, "changed": 0, "failed": 0, "deferred": 0}
            mark = await mark_of(db, company)
            start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            with database_down(outage_backend, request, settings):
                booking = fake.book(
                    EVENT_TYPE, start + timedelta(days=3), name="Ida Outage", email="io@x.de"
                )
                raw = json.dumps(created_webhook(booking)).encode()
                refused = await webhooks.post(
                    f"/v1/webhooks/calcom/{company}",
                    content=raw,
                    headers=calcom_headers(raw, SECRET),
                )
                assert refused.status_code == 503, refused.text
                assert refused.headers["retry-after"] == "2"
                assert refused.json()["code"] == "database_unavailable"
                # A run during the outage applies nothing and moves no mark.
                assert (await run())["failed"] == 1
                ctx: dict[str, Any] = {"db": db, "redis": arq, "http": http, "settings": settings}
                if outage_backend == "mysql":  # the cron cannot even list the companies
                    assert (await reconcile_calcom(ctx))["changed"] == 0
            assert await mark_of(db, company) == mark

            # Back: the next run applies the booking; later runs see it again and change nothing.
            assert (await run())["changed"] == 1
            assert await run() == {"companies": 1, "changed": 0, "failed": 0, "deferred": 0}
            rows = await appointments(db, company)
            assert [(a.calcom_booking_uid, a.source, a.status) for a in rows] == [
                (booking["uid"], "calcom", "confirmed")
            ]
            assert rows[0].starts_at == start + timedelta(days=3)
            assert await outbox(db, company) == [("notify", "booking_confirmed")]
            assert fake.violations == []
        finally:
            await db.dispose()
