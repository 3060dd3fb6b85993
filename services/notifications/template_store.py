"""Database reads and writes of the companies' own notification templates.

Every function takes a tenant-bound session: `shared.db.tenancy` limits the queries to the
session's company and stamps it on new rows.
"""

from __future__ import annotations

from typing import Literal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.notifications.default_templates import default_template
from services.notifications.locale import normalize_language
from shared.db.types import utcnow
from shared.models import NotificationTemplate

Source = Literal["company", "default"]


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


async def effective_template(
    session: AsyncSession, event_type: str, channel: str, language: str
) -> tuple[str | None, str, Source]:
    """(subject, body, source) the company's messages are rendered from.

    An email template stored without a subject keeps the built-in subject, as `render` does;
    a language without texts falls back to German.
    """
    language = normalize_language(language)
    default_template(event_type, channel, language)  # 422 for an unknown event or channel
    row = await get_template(session, event_type, channel, language)
    return effective_of(row, event_type, channel, language)


def effective_of(
    row: NotificationTemplate | None, event_type: str, channel: str, language: str
) -> tuple[str | None, str, Source]:
    """(subject, body, source) of a company's stored template, or of the built-in one."""
    default_subject, default_body = default_template(event_type, channel, language)
    if row is None:
        return default_subject, default_body, "default"
    subject = None if channel != "email" else (row.subject or default_subject)
    return subject, row.body, "company"
