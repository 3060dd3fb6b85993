"""Platform keys (no company): listed and revoked by platform operators.

Only a platform key with the admin scope may call their routes (`admin/api.py`; company keys:
403). The CLI offers the same (`appointments list-api-keys --platform`, `revoke-api-key`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.types import utcnow
from shared.errors import NotFound
from shared.models import ApiKey
from shared.web.auth_revocation import publish_after_commit

# The session is bound to the system scope by `PlatformAdmin` (shared.web.auth); these
# statements name their rows (company_id IS NULL).


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
