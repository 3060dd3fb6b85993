"""Platform keys (no company): listed and revoked by platform operators.

Only a platform key with the admin scope may call these routes (company keys: 403). The CLI
offers the same (`appointments list-api-keys --platform`, `revoke-api-key`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.types import utcnow
from shared.errors import NotFound
from shared.fields import InstantOut
from shared.models import ApiKey
from shared.web.auth import PlatformAdmin
from shared.web.auth_revocation import publish_after_commit
from shared.web.deps import Session

# The session is bound to the system scope by `PlatformAdmin` (shared.web.auth); these
# statements name their rows (company_id IS NULL).


class PlatformKeyOut(BaseModel):
    """A platform key as listed: never the key itself nor its hash; `prefix` identifies it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: InstantOut
    last_used_at: InstantOut | None
    expires_at: InstantOut | None
    revoked_at: InstantOut | None


class PlatformKeyList(BaseModel):
    items: list[PlatformKeyOut]


async def list_platform_keys(session: AsyncSession) -> Sequence[ApiKey]:
    stmt = (
        select(ApiKey)
        .where(ApiKey.company_id.is_(None))
        .order_by(ApiKey.created_at.desc(), ApiKey.id)
    )
    return (await session.execute(stmt)).scalars().all()


async def revoke_platform_key(session: AsyncSession, id: str) -> datetime:
    """Revoke (idempotent); every replica refuses the key within a second of the commit."""
    stmt = select(ApiKey).where(ApiKey.id == id, ApiKey.company_id.is_(None)).with_for_update()
    key = (await session.execute(stmt)).scalar_one_or_none()
    if key is None:
        raise NotFound("No such platform key.")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await session.flush()
    publish_after_commit(session)
    return key.revoked_at


_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid API key (problem+json)"},
    403: {"description": "Not a platform key, or without the admin scope (problem+json)"},
    404: {"description": "No such platform key (problem+json)"},
}
router = APIRouter(prefix="/platform-keys", responses=_PROBLEMS)


@router.get("", response_model=PlatformKeyList)
async def list_keys(session: Session, _: PlatformAdmin) -> Any:
    """Every platform key, revoked ones included (newest first)."""
    return {"items": await list_platform_keys(session)}


@router.delete("/{id}", status_code=204, response_class=Response)
async def revoke_key(session: Session, _: PlatformAdmin, id: str) -> None:
    """Revoke a platform key: refused by every replica within a second; stays listed."""
    await revoke_platform_key(session, id)
