"""Which database errors mean "the database is unavailable" (503 `database_unavailable` with
Retry-After) and which stay what they are (ADR 0019): the classification on real errors where
they are cheap to cause (a closed port, a silent one, SQLite's lock, a full pool, a constraint,
a syntax error) and on the driver's own error classes for the codes a restart produces; the one
handler on FastAPI routes, a dependency's teardown (the commit) and lean routes.
"""

from __future__ import annotations

import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncmy
import httpx
import pytest
import sqlalchemy as sa
from asyncmy import errors as my
from fastapi import Depends, FastAPI
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.responses import Response

from shared.config import Settings
from shared.db.engine import create_engine
from shared.db.errors import database_unavailable
from shared.db.raw_sql import RawPool
from shared.db.scoped import scoped
from shared.db.tenancy import SYSTEM
from shared.errors import (
    DatabaseTimeout,
    DatabaseUnavailable,
    NotFound,
    ServiceUnavailable,
)
from shared.redis.connection import free_port
from shared.web import lean
from shared.web.problems import install_problem_handlers


def wrapped(orig: BaseException) -> sa_exc.DBAPIError:
    """SQLAlchemy's wrapper of a driver error, as a failed statement raises it."""
    return sa_exc.DBAPIError.instance("SELECT 1", {}, orig, my.Error)  # type: ignore[arg-type]


UNAVAILABLE_DRIVER_ERRORS = [
    my.OperationalError(2003, "Can't connect to MySQL server on '127.0.0.1' (Errno 111)"),
    my.OperationalError(2002, "Can't connect to local server through socket"),
    my.OperationalError(2006, "MySQL server has gone away"),
    my.OperationalError(2013, "Lost connection to MySQL server during query"),
    my.OperationalError(2055, "Lost connection to server at 'handshake'"),
    my.OperationalError(1927, "Connection was killed"),
    my.OperationalError(1053, "Server shutdown in progress"),
    my.OperationalError(1040, "Too many connections"),
    my.InterfaceError(0, "Not connected"),
]
OTHER_DRIVER_ERRORS = [
    my.IntegrityError(1062, "Duplicate entry 'x' for key 'uq'"),
    my.OperationalError(1205, "Lock wait timeout exceeded; try restarting transaction"),
    my.OperationalError(1213, "Deadlock found when trying to get lock"),
    my.OperationalError(1045, "Access denied for user 'root'@'localhost'"),
    my.OperationalError(1049, "Unknown database 'nope'"),
    my.ProgrammingError(1064, "You have an error in your SQL syntax"),
    my.OperationalError(2014, "Command Out of Sync"),  # a bug of ours, not an outage
    my.DataError(1406, "Data too long for column 'name'"),
]


@pytest.mark.parametrize("error", UNAVAILABLE_DRIVER_ERRORS, ids=lambda e: str(e.args[0]))
def test_connection_errors_of_the_driver_mean_unavailable(error: Exception) -> None:
    assert isinstance(database_unavailable(error), DatabaseUnavailable)
    assert isinstance(database_unavailable(wrapped(error)), DatabaseUnavailable)


@pytest.mark.parametrize("error", OTHER_DRIVER_ERRORS, ids=lambda e: str(e.args[0]))
def test_other_errors_of_the_driver_stay_what_they_are(error: Exception) -> None:
    assert database_unavailable(error) is None
    assert database_unavailable(wrapped(error)) is None


@pytest.mark.parametrize(
    "error",
    [
        TimeoutError("some other deadline"),
        ConnectionRefusedError(111, "refused"),  # no database error: Redis, HTTP, ...
        RedisConnectionError("Redis is down"),
        NotFound("nothing"),
        ServiceUnavailable("policy is down"),
        RuntimeError("a bug"),
        sa_exc.InvalidRequestError("misuse"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_that_are_no_database_outage(error: Exception) -> None:
    assert database_unavailable(error) is None


def test_the_refusal_says_when_to_come_back() -> None:
    refusal = database_unavailable(DatabaseTimeout("no connection within 2 s"))
    assert refusal is not None
    assert (refusal.status, refusal.code) == (503, "database_unavailable")
    assert refusal.extra["headers"] == {"Retry-After": "2"}
    assert isinstance(refusal, ServiceUnavailable)  # the agent words it as a callback offer


async def test_a_closed_port_is_unavailable_raw_and_through_sqlalchemy() -> None:
    port = free_port()
    with pytest.raises(my.OperationalError) as raw:
        await asyncmy.connect(host="127.0.0.1", port=port, user="root", connect_timeout=1)
    assert raw.value.args[0] == 2003
    assert database_unavailable(raw.value) is not None
    engine = create_engine(f"mysql+asyncmy://root@127.0.0.1:{port}/x", Settings())
    try:
        with pytest.raises(sa_exc.OperationalError) as wrapped_error:
            async with engine.connect() as connection:
                await connection.execute(sa.text("SELECT 1"))
        assert database_unavailable(wrapped_error.value) is not None
    finally:
        await engine.dispose()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (the kernel's backlog) and never says a word, as a
    hung or half-started server does: only our own deadline ends a connect there."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


async def test_a_connect_that_gets_no_handshake_ends_at_the_connect_timeout(
    silent_port: int,
) -> None:
    settings = Settings(db_connect_timeout_s=0.3)
    engine = create_engine(f"mysql+asyncmy://root@127.0.0.1:{silent_port}/x", settings)
    started = time.monotonic()
    try:
        with pytest.raises(DatabaseTimeout) as error:
            async with engine.connect() as connection:
                await connection.execute(sa.text("SELECT 1"))
    finally:
        await engine.dispose()
    assert time.monotonic() - started < 2.0
    assert database_unavailable(error.value) is not None


async def test_the_raw_pool_ends_at_its_deadline_when_no_handshake_comes(
    silent_port: int,
) -> None:
    url = sa.engine.make_url(f"mysql+asyncmy://root@127.0.0.1:{silent_port}/x")
    engine = create_async_engine(url)
    pool = RawPool(url, engine.dialect, size=1, recycle_s=60, timeout_s=0.4, connect_timeout_s=0.2)
    statement = scoped(sa.select(sa.literal(1).label("one")), SYSTEM)
    started = time.monotonic()
    try:
        with pytest.raises(DatabaseTimeout) as error:
            await pool.first(statement, {}, tenant=SYSTEM)
    finally:
        await pool.close()
        await engine.dispose()
    assert time.monotonic() - started < 2.0
    assert isinstance(error.value, TimeoutError)  # callers catching timeouts still do
    assert database_unavailable(error.value) is not None


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    path = tmp_path / "classes.db"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)")
        connection.execute("INSERT INTO t (name) VALUES ('taken')")
    return path


async def test_sqlite_errors_real_ones(sqlite_path: Path) -> None:
    settings = Settings(sqlite_busy_timeout_ms=50)
    engine = create_engine(f"sqlite+aiosqlite:///{sqlite_path}", settings)
    holder = sqlite3.connect(sqlite_path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process writing, past the busy timeout
        with pytest.raises(sa_exc.OperationalError) as locked:
            async with engine.connect() as connection:
                await connection.execution_options(sqlite_begin="IMMEDIATE")
                async with connection.begin():
                    await connection.execute(sa.text("INSERT INTO t (name) VALUES ('x')"))
        assert "database is locked" in str(locked.value)
        assert database_unavailable(locked.value) is not None
        holder.execute("ROLLBACK")
        async with engine.connect() as connection:
            with pytest.raises(sa_exc.IntegrityError) as duplicate:
                await connection.execute(sa.text("INSERT INTO t (name) VALUES ('taken')"))
            with pytest.raises(sa_exc.OperationalError) as syntax:
                await connection.execute(sa.text("SELEC nonsense"))
        assert database_unavailable(duplicate.value) is None
        assert database_unavailable(syntax.value) is None  # an OperationalError, not a lock
    finally:
        holder.close()
        await engine.dispose()


async def test_no_pooled_connection_within_the_pool_timeout(sqlite_path: Path) -> None:
    engine = create_async_engine(
        f"sqlite+aiosqlite:///{sqlite_path}", pool_size=1, max_overflow=0, pool_timeout=0.1
    )
    try:
        async with engine.connect():
            with pytest.raises(sa_exc.TimeoutError) as exhausted:
                async with engine.connect():
                    pass
        assert database_unavailable(exhausted.value) is not None
    finally:
        await engine.dispose()


# --- the handler -------------------------------------------------------------------------------

LOST = wrapped(my.OperationalError(2013, "Lost connection to MySQL server during query"))
DUPLICATE = wrapped(my.IntegrityError(1062, "Duplicate entry"))
RAISES: dict[str, BaseException] = {
    "lost": LOST,
    "duplicate": DUPLICATE,
    "deadline": DatabaseTimeout("raw statement deadline"),
    "timeout": TimeoutError("not the database's"),
    "raw-gone": my.OperationalError(2006, "MySQL server has gone away"),
    "locked": wrapped(sqlite3.OperationalError("database is locked")),
}


async def failing_commit() -> AsyncIterator[None]:
    """A request session whose COMMIT (the dependency's exit) loses the connection."""
    yield
    raise LOST


def build_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/fail/{kind}")
    async def fail(kind: str) -> None:
        raise RAISES[kind]

    @app.post("/commit", dependencies=[Depends(failing_commit, scope="function")])
    async def commit() -> dict[str, str]:
        return {"status": "written"}

    async def lean_fail(request: lean.LeanRequest) -> Response | None:
        raise RAISES[request.path_params["kind"]]

    lean.install(app, {("POST", "/lean/{kind}"): lean_fail})
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        yield http


def refusal(response: httpx.Response) -> tuple[int, str | None, str | None, Any]:
    return (
        response.status_code,
        response.headers.get("content-type"),
        response.headers.get("retry-after"),
        response.json().get("code") if response.content else None,
    )


REFUSED = (503, "application/problem+json", "2", "database_unavailable")


@pytest.mark.parametrize("kind", ["lost", "deadline", "raw-gone", "locked"])
async def test_an_outage_is_a_503_on_routes_and_lean_routes(
    client: httpx.AsyncClient, kind: str
) -> None:
    assert refusal(await client.get(f"/fail/{kind}")) == REFUSED
    assert refusal(await client.post(f"/lean/{kind}")) == REFUSED


@pytest.mark.parametrize("kind", ["duplicate", "timeout"])
async def test_other_errors_stay_500(client: httpx.AsyncClient, kind: str) -> None:
    for response in (await client.get(f"/fail/{kind}"), await client.post(f"/lean/{kind}")):
        assert response.status_code == 500
        assert "retry-after" not in response.headers


async def test_a_commit_that_loses_the_connection_is_a_503_not_a_success(
    client: httpx.AsyncClient,
) -> None:
    assert refusal(await client.post("/commit")) == REFUSED
