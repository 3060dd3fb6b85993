"""Database reads and writes of the companies' own notification templates.

Every function takes a tenant-bound session: `shared.db.tenancy` limits the queries to the
session's company and stamps it on new rows.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.types import utcnow
from shared.models import NotificationTemplate


async def get_template(
    session: AsyncSession, event_type: str, channel: str, language: str, *, lock: bool = False
) -> NotificationTemplate | None:
    """The company's template for one event x channel x language (row-locked with `lock`)."""
    statement = sa.select(NotificationTemplate).where(
        NotificationTemplate.event_type == event_type,
        NotificationTemplate.channel == channel,
        NotificationTemplate.language == language,
    )
    if lock:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return (await session.scalars(statement)).first()


async def put_template(
    session: AsyncSession,
    *,
    event_type: str,
    channel: str,
    language: str,
    subject: str | None,
    body: str,
    updated_by: str | None,
) -> tuple[NotificationTemplate, bool]:
    """Insert or replace one (already validated) template; (row, created)."""
    row = await get_template(session, event_type, channel, language, lock=True)
    created = row is None
    if row is None:
        row = NotificationTemplate(
            event_type=event_type,
            channel=channel,
            language=language,
            subject=subject,
            body=body,
            updated_by=updated_by,
        )
        try:
            async with session.begin_nested():
                session.add(row)
        except IntegrityError:
            # A concurrent first PUT of this template committed in between: update its row.
            row = await get_template(session, event_type, channel, language, lock=True)
            assert row is not None
            created = False
    if not created:
        row.subject = subject
        row.body = body
        row.updated_by = updated_by
        row.updated_at = utcnow()
    await session.flush()
    return row, created


async def delete_template(
    session: AsyncSession, event_type: str, channel: str, language: str
) -> bool:
    """Remove the company's template (the built-in one applies again); False if it had none."""
    row = await get_template(session, event_type, channel, language, lock=True)
    if row is None:
        return False
    await session.delete(row)
    await session.flush()
    return True
