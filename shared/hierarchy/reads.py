"""Where one use case reads for one company: the raw pool or a session, never both written out.

On MariaDB a use case's reads run on the raw pool (autocommit at READ COMMITTED, no
SQLAlchemy per-call machinery, docs/adr/0009) until something needs a session (an ORM load);
from then on, and always without a raw pool (SQLite) or when the caller already holds a
session, they run on the session. The statements are the same `scoped` Core statements
either way, so each read has one implementation and the dialect choice is made here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.engine import Database
from shared.db.raw_sql import RawPool
from shared.db.scoped import execute


class Reads:
    """The reads of one use case for `company_id`."""

    def __init__(
        self,
        company_id: str,
        *,
        session: AsyncSession | None = None,
        raw: RawPool | None = None,
        open_session: Callable[[], Awaitable[AsyncSession]] | None = None,
    ) -> None:
        self.company_id = company_id
        self.raw = raw
        self._session = session
        self._open_session = open_session

    @classmethod
    def of(cls, source: Reads | AsyncSession, company_id: str) -> Reads:
        """`source` itself, or the reads of a session the caller holds."""
        return source if isinstance(source, Reads) else cls(company_id, session=source)

    async def session(self) -> AsyncSession:
        """The session (opened now, read-only, when the use case has none yet)."""
        if self._session is None:
            if self._open_session is None:
                raise RuntimeError("these reads have no session to open")
            self._session = await self._open_session()
        return self._session

    async def first(self, statement: sa.Select[Any], params: dict[str, Any]) -> Any:
        """The first row of a `scoped` statement (attribute access by column key), or None."""
        if self._session is None and self.raw is not None:
            return await self.raw.first(statement, params, tenant=self.company_id)
        session = await self.session()
        return (await execute(session, statement, params, company_id=self.company_id)).first()

    async def scalars(self, statement: sa.Select[Any], params: dict[str, Any]) -> list[Any]:
        """The first column of every row of a `scoped` statement."""
        if self._session is None and self.raw is not None:
            return await self.raw.scalars(statement, params, tenant=self.company_id)
        session = await self.session()
        result = await execute(session, statement, params, company_id=self.company_id)
        return list(result.scalars())

    async def snapshot_is_current(self) -> bool:
        """Do the next reads see every commit made before now? (Raw reads always do.)"""
        if self._session is None:
            return True
        return await snapshot_is_current(self._session)


@asynccontextmanager
async def reading(db: Database, company_id: str) -> AsyncIterator[Reads]:
    """Reads for one use case: raw on MariaDB, and a read-only transaction opened on first
    need (ended with the block: committed, or rolled back on an error)."""
    async with AsyncExitStack() as stack:

        async def open_session() -> AsyncSession:
            return await stack.enter_async_context(db.transaction(company_id, write=False))

        yield Reads(company_id, raw=db.raw, open_session=open_session)


async def snapshot_is_current(session: AsyncSession) -> bool:
    """Do this session's next reads see every commit made before now?

    READ COMMITTED (MariaDB here) reads the latest commits in each statement. A SQLite write
    transaction (BEGIN IMMEDIATE) holds the write lock, so every commit precedes its snapshot.
    A SQLite read transaction keeps the snapshot of its first read, which may be older.
    """
    connection = await session.connection()
    if connection.dialect.name == "sqlite":
        options = connection.sync_connection.get_execution_options()  # type: ignore[union-attr]
        return bool(options.get("sqlite_begin") == "IMMEDIATE")
    # shared.db.engine runs MySQL/MariaDB at READ COMMITTED; asking the server would cost a
    # round trip on every read.
    return True
