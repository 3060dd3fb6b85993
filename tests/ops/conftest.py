"""Fixtures of the operator views: a fake Cal.com, and inserts that fail at the database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from arq.connections import ArqRedis, create_pool
from sqlalchemy import text

from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.jobs.queue import redis_settings
from tests.conftest import Services
from tests.support.fake_calcom import FakeCalcom

CALCOM_KEY = "cal_live_test_0123456789abcdef"


@pytest.fixture(scope="session")
async def fake_server() -> AsyncIterator[FakeCalcom]:
    async with FakeCalcom(api_keys=[CALCOM_KEY]) as fake:
        yield fake


@pytest.fixture
def fake(fake_server: FakeCalcom) -> FakeCalcom:
    fake_server.reset()
    return fake_server


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[ArqRedis]:
    redis = await create_pool(redis_settings(settings))
    yield redis
    await redis.aclose()


@pytest.fixture
async def failing_marker(db: Database, backend: str) -> AsyncIterator[str]:
    """A `notes` value whose appointment INSERT the database refuses (a real trigger), so a
    booking fails with a genuine database error in the middle of its transaction."""
    marker = f"ops-force-db-error-{uuid.uuid4().hex[:8]}"
    name = f"ops_force_{uuid.uuid4().hex[:8]}"
    if backend == "sqlite":
        create = (
            f"CREATE TRIGGER {name} BEFORE INSERT ON appointments "
            f"WHEN NEW.notes = '{marker}' "
            "BEGIN SELECT RAISE(ABORT, 'forced failure for the ops test'); END"
        )
    else:
        create = (
            f"CREATE TRIGGER {name} BEFORE INSERT ON appointments FOR EACH ROW "
            f"IF NEW.notes = '{marker}' THEN "
            "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'forced failure for the ops test'; "
            "END IF"
        )
    async with db.transaction(SYSTEM) as session:
        await session.execute(text(create))
    yield marker
    async with db.transaction(SYSTEM) as session:
        await session.execute(text(f"DROP TRIGGER IF EXISTS {name}"))


@pytest.fixture
async def booking(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """The booking app, answering a 500 as a server does (instead of re-raising in the test)."""
    transport = httpx.ASGITransport(app=services.apps["booking"], raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://booking.test") as client:
        yield client
