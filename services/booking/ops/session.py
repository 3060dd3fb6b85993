"""Browser sessions of the `/ops` page: the cookie holds an opaque random token, never the key.

The token (32 random bytes) names a Redis entry, stored under its SHA-256 so a Redis dump
reveals no usable cookie, holding the operator key's id and company; it expires with the
cookie (8 h). Every page view re-reads the key row: a revoked or expired key, a key that lost
the operator scope or a deactivated company ends the session at once, on every replica.
Signing out deletes the entry.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from services.booking.ops.queries import KeyAccess, key_access
from shared.db.tenancy import bind_tenant
from shared.db.types import utcnow
from shared.errors import ServiceUnavailable
from shared.security.api_keys import company_is_active
from shared.web.auth import Principal, enforce_key_limit

PREFIX: Final = "ops:session:"
COOKIE: Final = "ops_session"
TOKEN_BYTES: Final = 32


@dataclass(frozen=True)
class SessionEntry:
    """What a session's Redis entry holds: whose key, in which company."""

    key_id: str
    company_id: str


def _redis_key(token: str) -> str:
    return PREFIX + hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def _unavailable(exc: RedisError) -> ServiceUnavailable:
    return ServiceUnavailable(f"The session store is unavailable ({type(exc).__name__}).")


async def open_session(redis: Redis, principal: Principal, ttl_s: int) -> str:
    """A new session of `principal`'s key; its token (the cookie's value)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    value = json.dumps({"key_id": principal.key_id, "company_id": principal.company_id})
    try:
        await redis.set(_redis_key(token), value, ex=ttl_s)
    except RedisError as exc:
        raise _unavailable(exc) from exc
    return token


async def close_session(redis: Redis, token: str) -> None:
    try:
        await redis.delete(_redis_key(token))
    except RedisError as exc:
        raise _unavailable(exc) from exc


async def _read(redis: Redis, token: str) -> SessionEntry | None:
    if not token or len(token) > 128:
        return None
    try:
        raw = await redis.get(_redis_key(token))
    except RedisError as exc:
        raise _unavailable(exc) from exc
    if raw is None:
        return None
    data = json.loads(raw)
    if not isinstance(data, dict):
        return None
    return SessionEntry(key_id=str(data.get("key_id")), company_id=str(data.get("company_id")))


def _valid(row: KeyAccess | None, now: datetime) -> bool:
    if row is None or row.revoked_at is not None:
        return False
    if row.expires_at is not None and row.expires_at <= now:
        return False
    scopes = set(row.scopes or ())
    return bool(scopes & {"operator", "admin"})


async def session_principal(
    request: Request, session: AsyncSession, token: str
) -> Principal | None:
    """The operator behind a session token, or None (unknown, expired, or its key no longer
    valid: then the session is deleted). Binds `session` to the company, like `authenticate`."""
    redis: Redis = request.app.state.redis
    entry = await _read(redis, token)
    if entry is None:
        return None
    key_id, company_id = entry.key_id, entry.company_id
    bind_tenant(session, company_id)
    row = await key_access(session, key_id, company_id)
    if not _valid(row, utcnow()) or not await company_is_active(session, company_id):
        await close_session(redis, token)
        return None
    assert row is not None
    await enforce_key_limit(request.app.state, key_id)
    request.state.company_id = company_id
    return Principal(
        company_id=company_id, key_id=key_id, scopes=frozenset(row.scopes), platform=False
    )
