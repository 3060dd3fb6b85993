"""Request-scoped dependencies: one request = one transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.engine import WRITE, Database, run_after_commit
from shared.outbox import dispatch_staged

_READ_METHODS = {"GET", "HEAD", "OPTIONS"}


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Open the request's transaction; commit when the endpoint returns, roll back on error.

    Scoped to the endpoint function, so the commit happens before the response is sent and a
    failed commit becomes an error answer, never a false success.
    """
    db = get_db(request)
    async with db.sessionmaker() as session:
        session.info["tenant"] = None
        async with session.begin():
            if db.is_sqlite and request.method not in _READ_METHODS:
                await session.connection(execution_options=WRITE)
            yield session
        await run_after_commit(session)
        await dispatch_staged(session, getattr(request.app.state, "arq", None))


Session = Annotated[AsyncSession, Depends(get_session, scope="function")]
