"""Request-scoped dependencies: one request = one transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.engine import Database
from shared.jobs.outbox import dispatch_staged

_READ_METHODS = {"GET", "HEAD", "OPTIONS"}


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


@asynccontextmanager
async def _transaction(request: Request, write: bool) -> AsyncIterator[AsyncSession]:
    # Unbound until authentication binds it (shared.web.auth): company data is refused until then.
    async with get_db(request).transaction(None, write=write) as session:
        yield session
    await dispatch_staged(session, getattr(request.app.state, "arq", None))


READ_ONLY = {"x-read-only": True}  # openapi_extra of a non-GET route that only reads


def _writes(request: Request) -> bool:
    if request.method in _READ_METHODS:
        return False
    route = request.scope.get("route")
    extra = getattr(route, "openapi_extra", None) or {}
    return not extra.get("x-read-only", False)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Open the request's transaction; commit when the endpoint returns, roll back on error.

    Scoped to the endpoint function, so the commit happens before the response is sent and a
    failed commit becomes an error answer, never a false success. On SQLite a request that
    writes takes the write lock up front (BEGIN IMMEDIATE); a POST that only reads (marked
    with `openapi_extra=READ_ONLY`, e.g. policy evaluation, which booking calls while holding
    that lock) does not.
    """
    async with _transaction(request, _writes(request)) as session:
        yield session


Session = Annotated[AsyncSession, Depends(get_session, scope="function")]
