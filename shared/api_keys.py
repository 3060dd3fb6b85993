"""API keys: generated at random, shown once, stored as SHA-256, verified in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.types import utcnow
from shared.errors import InvalidInput
from shared.models import ApiKey, Company

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


class _KeyCache:
    """Verified keys by hash for a few seconds, so a request costs no key lookup when warm.

    A revocation reaches other replicas after at most the TTL (settings.auth_cache_ttl_s).
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, VerifiedKey]] = {}

    def get(self, digest: str) -> VerifiedKey | None:
        entry = self._entries.get(digest)
        if entry is None or entry[0] < time.monotonic():
            self._entries.pop(digest, None)
            return None
        return entry[1]

    def put(self, digest: str, key: VerifiedKey, ttl_s: float) -> None:
        if ttl_s > 0:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[digest] = (time.monotonic() + ttl_s, key)

    def clear(self) -> None:
        self._entries.clear()


key_cache = _KeyCache()


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
        row = (
            await session.execute(
                select(ApiKey, Company.active)
                .outerjoin(Company, Company.id == ApiKey.company_id)
                .where(ApiKey.prefix == prefix),
                execution_options={"skip_tenant_filter": True},
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
        key_cache.put(digest, cached, cache_ttl_s)
    if cached.expires_at is not None and cached.expires_at <= now:
        return None
    return cached
