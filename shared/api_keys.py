"""API keys: generated at random, shown once, stored as SHA-256, verified in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.types import utcnow
from shared.errors import InvalidInput
from shared.models import ApiKey

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


async def verify_key(session: AsyncSession, plaintext: str) -> ApiKey | None:
    """The active key matching `plaintext`, or None. Looked up by prefix, hash compared safely."""
    prefix = parse_key(plaintext)
    if prefix is None:
        return None
    key = (
        await session.execute(
            select(ApiKey).where(ApiKey.prefix == prefix),
            execution_options={"skip_tenant_filter": True},
        )
    ).scalar_one_or_none()
    if key is None or not hmac.compare_digest(key.key_hash, hash_key(plaintext)):
        return None
    now = utcnow()
    if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
        return None
    return key
