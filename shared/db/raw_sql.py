"""Raw SQL: the hottest statements on MariaDB without SQLAlchemy's per-call machinery.

SQLAlchemy's asyncio layer costs about 0.2 ms of CPU per statement and as much again per
connection checkout and reset (greenlet switches, result metadata, pool events), several
times the driver's own work; a transaction adds a COMMIT round trip (docs/adr/0009). The
lean routes (shared/web/lean.py) and webhook ingestion therefore run their statements here:

- each statement is still written once, with SQLAlchemy Core, and compiled once for the
  engine's dialect (the SQL text and parameter order SQLAlchemy itself would send);
- parameters and results go through the column types' own bind and result processors, so a
  row reads exactly as through a session (UTC-aware instants, Decimal money, JSON);
- connections are asyncmy's own pool in autocommit mode at READ COMMITTED: every statement
  is its own transaction. Under READ COMMITTED each statement of a transaction sees the
  latest commits anyway, so a read in autocommit sees what the same read in a session's
  transaction would, and a single INSERT commits exactly as INSERT + COMMIT would. Work that
  needs one snapshot across statements, or several writes that must commit together, uses
  a session.

SQLite (the embedded default) has none of this: `Database.raw` is None there and the callers
use sessions.

Tenancy (docs/adr/0010): every statement must be built with `shared.db.scoped.scoped`, and
every method takes the tenant it runs for (a company id, or SYSTEM for a SYSTEM-scoped
statement); anything else is refused before a connection is taken.

A database restart (docs/adr/0019): a pooled connection the server closed is dropped by
asyncmy's pool at checkout; one idle for PING_AFTER_IDLE_S is pinged first (within the connect
timeout) and replaced once if the ping fails. The whole statement, checkout included, has one
deadline; past it the caller gets `DatabaseTimeout`, and driver errors stay asyncmy's own:
`shared.db.errors.database_unavailable` turns either into 503 `database_unavailable`.
"""

from __future__ import annotations

import asyncio
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import asyncmy
import sqlalchemy as sa
from sqlalchemy.engine import URL, Dialect

from shared.db.scoped import check_raw
from shared.errors import DatabaseTimeout
from shared.observability.tracing import sql_span

Processor = Callable[[Any], Any] | None
PING_AFTER_IDLE_S = 0.5  # as the engine's pool (shared/db/engine.py)


class RawStatement:
    """A Core SELECT or INSERT compiled once for `dialect`: SQL text, parameter order and
    the conversions of its parameters and result columns."""

    def __init__(self, statement: sa.Select[Any] | sa.Insert, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if compiled.positiontup is None:
            raise ValueError("raw statements need a dialect with positional parameters")
        self.sql = compiled.string
        self.names: tuple[str, ...] = tuple(compiled.positiontup)
        self.defaults: dict[str, Any] = dict(compiled.params)
        binds = compiled.binds
        for name in self.names:
            if binds[name].expanding:
                raise ValueError(f"raw statements do not expand IN parameters ({name})")
        self.bind: dict[str, Processor] = {
            name: binds[name].type.bind_processor(dialect) for name in set(self.names)
        }
        columns = list(statement.selected_columns) if isinstance(statement, sa.Select) else []
        self.result: tuple[Processor, ...] = tuple(
            column.type.result_processor(dialect, None) for column in columns
        )
        self.row = namedtuple("RawRow", [column.key for column in columns])  # type: ignore[misc]

    def arguments(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        values = []
        for name in self.names:
            value = params[name] if name in params else self.defaults[name]
            process = self.bind[name]
            values.append(process(value) if process is not None else value)
        return tuple(values)

    def convert(self, raw: Sequence[Any]) -> Any:
        return self.row(
            *(
                process(value) if process is not None else value
                for process, value in zip(self.result, raw, strict=True)
            )
        )


class RawPool:
    """Autocommit asyncmy connections for `RawStatement`s; created on first use."""

    def __init__(
        self,
        url: URL,
        dialect: Dialect,
        *,
        size: int,
        recycle_s: int,
        timeout_s: float,
        connect_timeout_s: float | None = None,
    ) -> None:
        _args, kwargs = dialect.create_connect_args(url)
        self.connect_timeout_s = min(connect_timeout_s or timeout_s, timeout_s)
        self._connect = {
            **kwargs,
            "autocommit": True,
            "init_command": "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
            "connect_timeout": self.connect_timeout_s,
        }
        self.timeout_s = timeout_s
        self.dialect = dialect
        self.system = "mariadb" if getattr(dialect, "is_mariadb", False) else dialect.name
        self.size = size
        self.recycle_s = recycle_s
        self._pool: Any = None
        self._creating: asyncio.Lock | None = None
        self._compiled: dict[int, tuple[Any, RawStatement]] = {}

    def compiled(self, statement: sa.Select[Any] | sa.Insert) -> RawStatement:
        """The statement's compiled form (statements are module constants: keyed by id)."""
        found = self._compiled.get(id(statement))
        if found is None or found[0] is not statement:
            found = (statement, RawStatement(statement, self.dialect))
            self._compiled[id(statement)] = found
        return found[1]

    async def _pool_ready(self) -> Any:
        if self._pool is not None:
            return self._pool
        if self._creating is None:
            self._creating = asyncio.Lock()
        async with self._creating:
            if self._pool is None:
                self._pool = await asyncmy.create_pool(
                    minsize=0, maxsize=self.size, pool_recycle=self.recycle_s, **self._connect
                )
        return self._pool

    async def _alive(self, connection: Any) -> bool:
        """False (and the connection closed) when a connection idle for a while fails a ping
        within the connect timeout: the network dropped it, or the server is gone."""
        if connection.loop.time() - connection.last_usage < PING_AFTER_IDLE_S:
            return True
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                await connection.ping(False)
        except Exception:
            connection.close()  # released closed: the pool does not keep it
            return False
        return True

    async def _run(
        self, statement: sa.Select[Any] | sa.Insert, params: Mapping[str, Any], tenant: str
    ) -> tuple[int, list[Any]]:
        """(affected rows, converted rows) of one statement, in its own transaction."""
        params = check_raw(statement, params, tenant)
        query = self.compiled(statement)
        pool = await self._pool_ready()
        try:
            # One deadline for checkout and statement (the driver's read_timeout would start
            # a task per packet read).
            async with asyncio.timeout(self.timeout_s):
                # Idle connections that fail their ping are dropped and the next one taken;
                # once the free ones are used up the pool connects anew (never pinged).
                for _ in range(self.size + 1):
                    async with pool.acquire() as connection:
                        if not await self._alive(connection):
                            continue
                        try:
                            with sql_span(query.sql, self.system):
                                async with connection.cursor() as cursor:
                                    await cursor.execute(query.sql, query.arguments(params))
                                    rows = await cursor.fetchall() if query.result else ()
                                    affected = cursor.rowcount
                        except BaseException:
                            connection.close()  # cut off or failed midway: never pooled again
                            raise
                        return affected, [query.convert(row) for row in rows]
        except TimeoutError as exc:
            raise DatabaseTimeout(f"no answer from the database within {self.timeout_s} s") from exc
        raise DatabaseTimeout("no live database connection")

    async def _fetch(
        self, statement: sa.Select[Any], params: Mapping[str, Any], tenant: str
    ) -> list[Any]:
        return (await self._run(statement, params, tenant))[1]

    async def first(
        self, statement: sa.Select[Any], params: Mapping[str, Any], *, tenant: str
    ) -> Any:
        """The first row (attribute access by column key), or None."""
        rows = await self._fetch(statement, params, tenant)
        return rows[0] if rows else None

    async def scalars(
        self, statement: sa.Select[Any], params: Mapping[str, Any], *, tenant: str
    ) -> list[Any]:
        """The first column of every row."""
        return [row[0] for row in await self._fetch(statement, params, tenant)]

    async def execute(self, statement: sa.Insert, params: Mapping[str, Any], *, tenant: str) -> int:
        """Run one INSERT as a transaction of its own (committed when this returns); the
        number of rows it inserted."""
        return (await self._run(statement, params, tenant))[0]

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            await self._pool.wait_closed()
            self._pool = None
