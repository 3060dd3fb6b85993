"""Async engine and session factory from DATABASE_URL (SQLite or MySQL/MariaDB).

SQLite gets foreign keys, WAL and a busy timeout on every connection, and takes its write
lock up front (`BEGIN IMMEDIATE`) for write transactions, because SQLAlchemy drops
`FOR UPDATE` there. MySQL/MariaDB runs at READ COMMITTED; fences are constraints or row locks.

A database restart must cost no request once the database is back (docs/adr/0019): a new
MariaDB connection has DB_CONNECT_TIMEOUT_S for TCP and handshake, and a pooled connection is
checked at checkout, for free when the server has closed it (a restart: the socket saw EOF)
and by a ping within that timeout when it sat idle for PING_AFTER_IDLE_S (a connection the
network dropped without a word). A failed check discards every older pooled connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncmy
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from shared.config import Settings, get_settings
from shared.db.raw_sql import RawPool
from shared.db.scoped import guard_engine
from shared.db.tenancy import install_tenant_guard
from shared.errors import DatabaseTimeout
from shared.observability.tracing import instrument_engine

try:  # SQLAlchemy 2.1; 2.0 calls it await_only
    from sqlalchemy.util import await_
except ImportError:  # pragma: no cover
    from sqlalchemy.util import await_only as await_  # type: ignore[no-redef,unused-ignore]

WRITE = {"sqlite_begin": "IMMEDIATE"}
# A pooled connection unused for this long is pinged before it is handed out (HikariCP's
# aliveness bypass window is 0.5 s too): under load connections come back within
# milliseconds and are never pinged; when they are, one round trip is nothing at that rate.
PING_AFTER_IDLE_S = 0.5


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_file(url: str) -> Path | None:
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def create_engine(
    url: str | None = None, settings: Settings | None = None, **kw: Any
) -> AsyncEngine:
    """Create the engine for `url` (default: settings.database_url)."""
    settings = settings or get_settings()
    url = url or settings.database_url
    kw.setdefault("hide_parameters", True)  # SQL errors and logs never carry bound values
    if is_sqlite(url):
        path = _sqlite_file(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url, connect_args={"timeout": settings.sqlite_busy_timeout_ms / 1000}, **kw
        )
        _configure_sqlite(engine, settings.sqlite_busy_timeout_ms)
        return engine
    kw.setdefault("pool_size", settings.db_pool_size)
    kw.setdefault("max_overflow", settings.db_max_overflow)
    timeout_s = settings.db_connect_timeout_s
    if make_url(url).get_driver_name() == "asyncmy":
        dialect_url = make_url(url)
        kw.setdefault("async_creator", _asyncmy_connector(dialect_url, timeout_s))
    # Connections are recycled well inside the server's wait_timeout; broken ones are found at
    # checkout (`_check_on_checkout`), not by SQLAlchemy's pre-ping (a round trip per request,
    # and one that waits forever on a connection the network dropped).
    engine = create_async_engine(url, pool_recycle=1800, isolation_level="READ COMMITTED", **kw)
    if engine.dialect.driver == "asyncmy":
        _check_on_checkout(engine, timeout_s)
    return engine


def connect_kwargs(url: URL, dialect: Dialect) -> dict[str, Any]:
    """The driver's connect arguments for `url`, as the dialect itself would pass them (a
    dict: keyword arguments named by the driver, URL query options included)."""
    _args, kwargs = dialect.create_connect_args(url)
    return dict(kwargs)


def _asyncmy_connector(url: URL, timeout_s: float) -> Any:
    """An `async_creator`: asyncmy's connect_timeout covers only the TCP connect, so the whole
    connect (TCP, handshake, authentication, session setup) gets one deadline here."""
    from sqlalchemy.dialects.mysql.asyncmy import MySQLDialect_asyncmy

    kwargs = connect_kwargs(url, MySQLDialect_asyncmy())
    kwargs["connect_timeout"] = timeout_s

    async def connect() -> Any:
        try:
            async with asyncio.timeout(timeout_s):
                return await asyncmy.connect(**kwargs)
        except TimeoutError as exc:
            raise DatabaseTimeout(f"no database connection within {timeout_s} s") from exc

    return connect


async def _ping(driver: Any, timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        await driver.ping(False)


def _check_on_checkout(engine: AsyncEngine, timeout_s: float) -> None:
    """Hand out no connection a restart or the network has broken; replace it instead."""

    @event.listens_for(engine.sync_engine, "checkout")
    def _checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        driver = dbapi_connection.driver_connection
        if getattr(driver, "_stream_broken", False):
            # The server closed it (restart, kill, wait_timeout): every older one is suspect.
            raise sa_exc.InvalidatePoolError("pooled connection closed by the server")
        if driver.loop.time() - driver.last_usage < PING_AFTER_IDLE_S:
            return
        try:
            await_(_ping(driver, timeout_s))
        except Exception as exc:
            raise sa_exc.InvalidatePoolError(f"idle connection failed its ping: {exc!r}") from exc


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, emit BEGIN, so that we can choose IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {'IMMEDIATE' if mode == 'IMMEDIATE' else 'DEFERRED'}")


class Database:
    """The engine and session factory of one process; created at start-up, never at import."""

    def __init__(self, url: str | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.url = url or self.settings.database_url
        self.is_sqlite = is_sqlite(self.url)
        self.engine = create_engine(self.url, self.settings)
        instrument_engine(self.engine)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        install_tenant_guard()
        guard_engine(self.engine)
        # MariaDB only: autocommit statements of the hot paths (shared/db/raw_sql.py).
        self.raw: RawPool | None = None
        if not self.is_sqlite and self.settings.raw_pool_size > 0:
            self.raw = RawPool(
                self.engine.url,
                self.engine.dialect,
                size=self.settings.raw_pool_size,
                recycle_s=1800,
                timeout_s=self.settings.raw_timeout_s,
                connect_timeout_s=self.settings.db_connect_timeout_s,
            )

    @asynccontextmanager
    async def transaction(
        self, tenant: str | None, *, write: bool = True
    ) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits on success, rolls back on error.

        `tenant` has no default: a company id; SYSTEM (shared.db.tenancy), the explicit opt-in
        of platform work (crons, sweepers, seeding, auth lookups) to every company's rows; or
        None for a request session that authentication binds later (`bind_tenant`), which
        until then may not touch company data.
        """
        async with self.sessionmaker() as session:
            session.info["tenant"] = tenant
            async with session.begin():
                if write and self.is_sqlite:
                    await session.connection(execution_options=WRITE)
                yield session
            await run_after_commit(session)

    async def dispose(self) -> None:
        if self.raw is not None:
            await self.raw.close()
        await self.engine.dispose()


async def run_after_commit(session: AsyncSession) -> None:
    """Run callbacks registered with `after_commit` once the transaction has committed."""
    callbacks = session.info.pop("after_commit", [])
    for callback in callbacks:
        await callback()


def after_commit(session: AsyncSession, callback: Any) -> None:
    """Register an async callable to run only if this session's transaction commits."""
    session.info.setdefault("after_commit", []).append(callback)
