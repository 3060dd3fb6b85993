"""The company's own API keys: issued with the plaintext shown once, listed, revoked.

`api_keys` is not a tenant table (authentication reads it before a tenant is known), so
every query here names the company explicitly; platform keys are never visible.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.admin.access.schemas import ApiKeyCreate, ApiKeyUpdate
from services.booking.admin.crud import flush
from shared.db.types import utcnow
from shared.errors import InvalidInput, NotFound
from shared.models import ApiKey
from shared.security.api_keys import IssuedKey, issue_key
from shared.web.auth_revocation import publish_after_commit


async def list_keys(session: AsyncSession, company_id: str) -> Sequence[ApiKey]:
    stmt = (
        select(ApiKey)
        .where(ApiKey.company_id == company_id)
        .order_by(ApiKey.created_at.desc(), ApiKey.id)
    )
    return (await session.execute(stmt)).scalars().all()


async def get_key(
    session: AsyncSession, company_id: str, id: str, *, for_update: bool = False
) -> ApiKey:
    stmt = select(ApiKey).where(ApiKey.id == id, ApiKey.company_id == company_id)
    if for_update:
        stmt = stmt.with_for_update()
    key = (await session.execute(stmt)).scalar_one_or_none()
    if key is None:
        raise NotFound("No such API key.")
    return key


async def create_key(session: AsyncSession, company_id: str, body: ApiKeyCreate) -> IssuedKey:
    if body.expires_at is not None and body.expires_at <= utcnow():
        raise InvalidInput("must lie in the future", field="expires_at")
    issued = issue_key(session, company_id=company_id, name=body.name, scopes=body.scopes)
    issued.key.expires_at = body.expires_at
    await flush(session, "The API key could not be stored; try again.")
    return issued


async def update_key(session: AsyncSession, company_id: str, id: str, body: ApiKeyUpdate) -> ApiKey:
    key = await get_key(session, company_id, id, for_update=True)
    changes = body.model_dump(exclude_unset=True)
    for name, value in changes.items():
        if value is None:
            raise InvalidInput("may not be null", field=name)
        setattr(key, name, value)
    await flush(session, "The API key conflicts with existing data.")
    if "scopes" in changes:
        publish_after_commit(session)  # every replica re-reads the key within a second
    return key


async def revoke_key(session: AsyncSession, company_id: str, id: str) -> None:
    """Revoke (idempotent): the row stays for the audit trail, the key stops working."""
    key = await get_key(session, company_id, id, for_update=True)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    await flush(session, "The API key could not be revoked; try again.")
    # Once committed: this replica forgets at once, every other one within a second.
    publish_after_commit(session)
