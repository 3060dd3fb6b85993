"""`appointments list-api-keys`, `revoke-api-key` and `rotate-secrets`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.db.types import utcnow
from shared.errors import NotFound
from shared.models import ApiKey
from shared.security.api_keys import KEY_PREFIX, parse_key
from shared.security.secrets_at_rest import SecretKeyError, rotate, split_fallbacks, use_keys
from shared.web.auth_revocation import publish_auth_change
from tools.runner import DEFAULT_REDIS_DIR
from tools.supervision import EMBEDDED_URL_FILE

# api_keys is read before a tenant is known: these statements name their rows themselves.
_NO_TENANT: dict[str, bool] = {}  # the CLI's sessions are SYSTEM-scoped (shared.db.tenancy)
# Where `appointments run` notes the URL of its embedded Redis (tools/supervision.py).
EMBEDDED_REDIS_URL_FILE = DEFAULT_REDIS_DIR / EMBEDDED_URL_FILE


def _instant(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class KeyView(BaseModel):
    """One key as `list-api-keys --json` prints it (never the key itself)."""

    id: str
    prefix: str
    company_id: str | None
    name: str
    scopes: list[str]
    created_at: str | None
    last_used_at: str | None
    expires_at: str | None
    revoked_at: str | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyView:
        return cls(
            id=key.id,
            prefix=key.prefix,
            company_id=key.company_id,
            name=key.name,
            scopes=list(key.scopes),
            created_at=_instant(key.created_at),
            last_used_at=_instant(key.last_used_at),
            expires_at=_instant(key.expires_at),
            revoked_at=_instant(key.revoked_at),
        )


class RevokeAnswer(BaseModel):
    """The one JSON line of `revoke-api-key`."""

    status: Literal["revoked", "already_revoked"]
    id: str
    prefix: str
    company_id: str | None
    revoked_at: str | None
    published: bool


# --- publish -----------------------------------------------------------------------------------


def redis_url_for_publish(
    settings: Settings, url_file: Path = EMBEDDED_REDIS_URL_FILE
) -> str | None:
    """REDIS_URL, else the embedded Redis of a running `appointments run` (if any)."""
    if settings.redis_url:
        return settings.redis_url
    try:
        return url_file.read_text(encoding="ascii").strip() or None
    except OSError:
        return None


async def publish(settings: Settings) -> bool:
    """Tell running services to forget cached keys (False when no Redis took it)."""
    from shared.redis.connection import redis_client

    url = redis_url_for_publish(settings)
    if url is None:
        return False
    client = redis_client(url, settings=settings)
    try:
        return await publish_auth_change(client)
    except (RedisError, OSError):
        return False
    finally:
        await client.aclose()


def _warn_unpublished(settings: Settings) -> None:
    print(
        "appointments: no Redis reachable (REDIS_URL unset or down): running services refuse "
        f"the key once their cache entry expires (AUTH_CACHE_TTL_S={settings.auth_cache_ttl_s:g})",
        file=sys.stderr,
    )


# --- list-api-keys -----------------------------------------------------------------------------


async def _list(settings: Settings, platform_only: bool) -> list[KeyView]:
    db = Database(settings=settings)
    try:
        async with db.transaction(SYSTEM, write=False) as session:
            stmt = sa.select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
            if platform_only:
                stmt = stmt.where(ApiKey.company_id.is_(None))
            keys = (await session.execute(stmt, execution_options=_NO_TENANT)).scalars().all()
            return [KeyView.of(key) for key in keys]
    finally:
        await db.dispose()


def cmd_list_api_keys(args: argparse.Namespace, settings: Settings) -> int:
    keys = asyncio.run(_list(settings, args.platform))
    if args.json:
        print(json.dumps([key.model_dump() for key in keys], indent=2))
        return 0
    print(f"{'PREFIX':<13} {'OWNER':<36} {'NAME':<28} {'SCOPES':<24} STATUS")
    for key in keys:
        owner = key.company_id or "platform"
        status = f"revoked {key.revoked_at}" if key.revoked_at else "active"
        scopes = ",".join(key.scopes)
        print(f"{key.prefix:<13} {owner:<36} {key.name[:28]:<28} {scopes:<24} {status}")
    return 0


# --- revoke-api-key ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Revoked:
    key: KeyView
    already: bool


def _lookup(value: str) -> str:
    """A key's prefix from `ak_<prefix>_<secret>` or `ak_<prefix>`; else `value` itself."""
    value = value.strip()
    if value.startswith(f"{KEY_PREFIX}_"):
        return parse_key(value) or value.split("_")[1]
    return value


async def revoke_key(session: AsyncSession, prefix_or_id: str) -> Revoked:
    """Revoke the key with this id or prefix (any company's, or a platform key)."""
    wanted = _lookup(prefix_or_id)
    stmt = (
        sa.select(ApiKey)
        .where(sa.or_(ApiKey.id == wanted, ApiKey.prefix == wanted))
        .with_for_update()
    )
    key = (await session.execute(stmt, execution_options=_NO_TENANT)).scalar_one_or_none()
    if key is None:
        raise NotFound(f"no API key with id or prefix {prefix_or_id!r}")
    already = key.revoked_at is not None
    if not already:
        key.revoked_at = utcnow()
        await session.flush()
    return Revoked(KeyView.of(key), already)


async def _revoke(settings: Settings, prefix_or_id: str) -> Revoked:
    db = Database(settings=settings)
    try:
        async with db.transaction(SYSTEM) as session:
            return await revoke_key(session, prefix_or_id)
    finally:
        await db.dispose()


def cmd_revoke_api_key(args: argparse.Namespace, settings: Settings) -> int:
    revoked = asyncio.run(_revoke(settings, args.key))
    published = asyncio.run(publish(settings))
    key = revoked.key
    answer = RevokeAnswer(
        status="already_revoked" if revoked.already else "revoked",
        id=key.id,
        prefix=key.prefix,
        company_id=key.company_id,
        revoked_at=key.revoked_at,
        published=published,
    )
    print(json.dumps(answer.model_dump()))
    if not published:
        _warn_unpublished(settings)
    return 0


# --- rotate-secrets ----------------------------------------------------------------------------

SECRET_COLUMNS = ("retell_api_key", "calcom_webhook_secret", "calcom_api_key")
# The stored tokens themselves, not the decrypting column type of the model.
_COMPANIES = sa.table(
    "companies", sa.column("id", sa.String), *(sa.column(c, sa.String) for c in SECRET_COLUMNS)
)


@dataclass(frozen=True)
class Rotation:
    rotated: int
    unreadable: list[tuple[str, str]]  # (company id, column)


async def rotate_secrets(session: AsyncSession) -> Rotation:
    """Re-encrypt every stored secret under the current SECRET_KEY (SECRET_KEY_FALLBACKS
    decrypt the old ones). Values no key decrypts are left as they are and reported."""
    rows = (
        await session.execute(
            sa.select(_COMPANIES).order_by(_COMPANIES.c.id), execution_options=_NO_TENANT
        )
    ).all()
    rotated = 0
    unreadable: list[tuple[str, str]] = []
    for row in rows:
        values: dict[str, str] = {}
        for column in SECRET_COLUMNS:
            token = getattr(row, column)
            if token is None:
                continue
            try:
                values[column] = rotate(token)
            except SecretKeyError:
                unreadable.append((row.id, column))
        if values:
            await session.execute(
                _COMPANIES.update().where(_COMPANIES.c.id == row.id).values(**values),
                execution_options=_NO_TENANT,
            )
            rotated += len(values)
    return Rotation(rotated, unreadable)


async def _rotate(settings: Settings) -> Rotation:
    db = Database(settings=settings)
    keys = use_keys(settings.secret_key, split_fallbacks(settings.secret_key_fallbacks))
    try:
        with keys:
            async with db.transaction(SYSTEM) as session:
                return await rotate_secrets(session)
    finally:
        await db.dispose()


def cmd_rotate_secrets(args: argparse.Namespace, settings: Settings) -> int:
    result = asyncio.run(_rotate(settings))
    print(f"rotated {result.rotated} secrets under the current SECRET_KEY")
    for company_id, column in result.unreadable:
        print(
            f"appointments: company {company_id}: {column} does not decrypt with SECRET_KEY or "
            "SECRET_KEY_FALLBACKS; left unchanged",
            file=sys.stderr,
        )
    return 1 if result.unreadable else 0


# --- parser ------------------------------------------------------------------------------------


def add_commands(commands: Any) -> None:
    """Register the three commands on the `appointments` sub-parsers."""
    listing = commands.add_parser(
        "list-api-keys",
        help="list API keys (never the keys themselves)",
        description="List every API key (or only platform keys): prefix, owner, name, scopes, "
        "revocation.",
    )
    listing.add_argument("--platform", action="store_true", help="only platform keys")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    listing.set_defaults(handler=cmd_list_api_keys)

    revoke = commands.add_parser(
        "revoke-api-key",
        help="revoke an API key by id or prefix",
        description="Revoke the API key with this id or prefix (also accepted: the key "
        "itself). Running services refuse it within a second (published over REDIS_URL, or the "
        "embedded Redis of `appointments run`). Prints one JSON line; idempotent.",
    )
    revoke.add_argument("key", metavar="PREFIX_OR_ID")
    revoke.set_defaults(handler=cmd_revoke_api_key)

    rotate_parser = commands.add_parser(
        "rotate-secrets",
        help="re-encrypt tenant secrets under the current SECRET_KEY",
        description="Re-encrypt every stored tenant secret (Retell and Cal.com keys, webhook "
        "secrets) under SECRET_KEY; give the previous key(s) in SECRET_KEY_FALLBACKS. Prints "
        "how many values were rotated; exit code 1 if some value decrypts with none of the keys.",
    )
    rotate_parser.set_defaults(handler=cmd_rotate_secrets)
