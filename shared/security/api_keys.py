"""API keys: generated at random, shown once, stored as SHA-256, verified in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.scoped import execute, scoped
from shared.db.tenancy import SYSTEM
from shared.db.types import utcnow
from shared.errors import InvalidInput
from shared.models import ApiKey, Company

T = TypeVar("T")

SCOPES = ("admin", "agent", "operator", "service")
KEY_PREFIX = "ak"


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    plaintext: str


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def parse_key(plaintext: str) -> str | None:
    """Return the lookup prefix of a well-formed key (`ak_<prefix>_<secret>`), else None."""
    parts = plaintext.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != 12 or len(parts[2]) < 32:
        return None
    return parts[1]


def issue_key(
    session: AsyncSession, *, company_id: str | None, name: str, scopes: list[str]
) -> IssuedKey:
    """Create a key row; the plaintext exists only in the returned value."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise InvalidInput(
            f"scopes must be a non-empty subset of {', '.join(SCOPES)}", field="scopes"
        )
    prefix = secrets.token_hex(6)
    plaintext = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(
        company_id=company_id,
        name=name,
        prefix=prefix,
        key_hash=hash_key(plaintext),
        scopes=sorted(set(scopes)),
    )
    session.add(key)
    return IssuedKey(key=key, plaintext=plaintext)


@dataclass(frozen=True)
class VerifiedKey:
    id: str
    company_id: str | None
    scopes: tuple[str, ...]
    expires_at: datetime | None


class _TTLCache(Generic[T]):
    """Values by key for a few seconds, so a warm request costs no lookup.

    A revocation, scope change or deactivation empties the caches of every replica within
    AUTH_REVOCATION_POLL_S (shared/web/auth_revocation.py). `epoch` counts those clears: a value
    read from the database before a clear is not filed after it (`put(..., epoch=...)`).
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, T]] = {}
        self.epoch = 0

    def get(self, key: str) -> T | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            self._entries.pop(key, None)
            return None
        return entry[1]

    def put(self, key: str, value: T, ttl_s: float, epoch: int | None = None) -> None:
        """File `value`; not if the cache was cleared since `epoch` (read before the clear)."""
        if ttl_s > 0 and (epoch is None or epoch == self.epoch):
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[key] = (time.monotonic() + ttl_s, value)

    def clear(self) -> None:
        self.epoch += 1
        self._entries.clear()


# Verified keys by hash; emptied on every replica when any key is revoked or rescoped.
key_cache: _TTLCache[VerifiedKey] = _TTLCache()
# Active companies named by a platform key's X-Company-ID. Only "active" is cached, so a new
# company works at once; a deactivation publishes like a revocation (docs/adr/0014).
company_cache: _TTLCache[bool] = _TTLCache()


# Auth lookups run before any tenant is bound: the explicit system scope.
_ACTIVE_COMPANY = scoped(
    select(Company.id).where(Company.id == bindparam("company_id"), Company.active.is_(True)),
    SYSTEM,
)


async def company_is_active(
    session: AsyncSession, company_id: str, cache_ttl_s: float = 0.0
) -> bool:
    """Does an active company with this id exist (cached for `cache_ttl_s` when it does)?"""
    if cache_ttl_s > 0 and company_cache.get(company_id):
        return True
    epoch = company_cache.epoch
    # Core on the session's connection, before any tenant is bound: a SYSTEM-scoped lookup.
    found = (await execute(session, _ACTIVE_COMPANY, {"company_id": company_id})).scalar()
    if found is None:
        return False
    company_cache.put(company_id, True, cache_ttl_s, epoch)
    return True


def cached_key(plaintext: str) -> VerifiedKey | None:
    """The key `plaintext` names when the in-process cache holds it and it has not expired;
    None otherwise (unknown, uncached, malformed: `verify_key` decides those)."""
    if parse_key(plaintext) is None:
        return None
    cached = key_cache.get(hash_key(plaintext))
    if cached is None or (cached.expires_at is not None and cached.expires_at <= utcnow()):
        return None
    return cached


async def verify_key(
    session: AsyncSession, plaintext: str, cache_ttl_s: float = 0.0
) -> VerifiedKey | None:
    """The active key matching `plaintext` (its company active too), or None.

    Looked up by prefix, hash compared in constant time.
    """
    prefix = parse_key(plaintext)
    if prefix is None:
        return None
    digest = hash_key(plaintext)
    now = utcnow()
    cached = key_cache.get(digest) if cache_ttl_s > 0 else None
    if cached is None:
        epoch = key_cache.epoch
        row = (
            await session.execute(
                scoped(  # auth looks the key up before any tenant is known
                    select(ApiKey, Company.active)
                    .outerjoin(Company, Company.id == ApiKey.company_id)
                    .where(ApiKey.prefix == prefix),
                    SYSTEM,
                )
            )
        ).first()
        if row is None:
            return None
        key, company_active = row
        if not hmac.compare_digest(key.key_hash, digest):
            return None
        if key.revoked_at is not None or (key.company_id is not None and not company_active):
            return None
        cached = VerifiedKey(key.id, key.company_id, tuple(key.scopes), key.expires_at)
        key_cache.put(digest, cached, cache_ttl_s, epoch)
    if cached.expires_at is not None and cached.expires_at <= now:
        return None
    return cached
