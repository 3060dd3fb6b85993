"""Use cases of the companies' notification templates: the text a message is rendered from,
and the template API's reads, writes and previews (one transaction, the request's, each)."""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from services.notifications.templates import queries
from services.notifications.templates.budget import in_thread
from services.notifications.templates.defaults import default_template
from services.notifications.templates.locale import normalize_language
from services.notifications.templates.rendering import render
from services.notifications.templates.samples import sample_raw
from services.notifications.templates.schemas import (
    Channel,
    EventType,
    Language,
    PreviewIn,
    PreviewOut,
    Source,
    TemplateOut,
)
from services.notifications.templates.validation import validate_template
from shared.errors import InvalidInput, NotFound
from shared.models import NotificationTemplate


class EffectiveTemplate(NamedTuple):
    """The texts a company's messages are rendered from, and whose they are."""

    subject: str | None
    body: str
    source: Source


async def effective_template(
    session: AsyncSession, event_type: str, channel: str, language: str
) -> EffectiveTemplate:
    """(subject, body, source) the company's messages are rendered from.

    An email template stored without a subject keeps the built-in subject, as `render` does;
    a language without texts falls back to German.
    """
    language = normalize_language(language)
    default_template(event_type, channel, language)  # 422 for an unknown event or channel
    row = await queries.get_template(session, event_type, channel, language)
    return effective_of(row, event_type, channel, language)


def effective_of(
    row: NotificationTemplate | None, event_type: str, channel: str, language: str
) -> EffectiveTemplate:
    """(subject, body, source) of a company's stored template, or of the built-in one."""
    default_subject, default_body = default_template(event_type, channel, language)
    if row is None:
        return EffectiveTemplate(default_subject, default_body, "default")
    subject = None if channel != "email" else (row.subject or default_subject)
    return EffectiveTemplate(subject, row.body, "company")


def check_subject(channel: str, subject: str | None) -> None:
    """InvalidInput for a subject on a channel that has none (sms, whatsapp)."""
    if subject is not None and channel != "email":
        raise InvalidInput(f"A {channel} message has no subject.", field="subject")


def template_out(
    row: NotificationTemplate | None, event_type: EventType, channel: Channel, language: Language
) -> TemplateOut:
    subject, body, source = effective_of(row, event_type, channel, language)
    return TemplateOut(
        event_type=event_type,
        channel=channel,
        language=language,
        subject=subject,
        body=body,
        source=source,
        updated_at=None if row is None else row.updated_at.isoformat(),
        updated_by=None if row is None else row.updated_by,
    )


async def get_template(
    session: AsyncSession, event_type: EventType, channel: Channel, language: Language
) -> TemplateOut:
    """The company's template, else the built-in one (`source` says which)."""
    row = await queries.get_template(session, event_type, channel, language)
    return template_out(row, event_type, channel, language)


async def put_template(
    session: AsyncSession,
    *,
    event_type: EventType,
    channel: Channel,
    language: Language,
    subject: str | None,
    body: str,
    updated_by: str | None,
) -> tuple[TemplateOut, bool]:
    """Set the company's template, validated now so sending cannot fail on it later;
    (the template, created)."""
    check_subject(channel, subject)
    # Off the event loop: the render budget, not the loop, bounds a hostile template.
    await in_thread(validate_template, event_type, body, subject)
    row, created = await queries.put_template(
        session,
        event_type=event_type,
        channel=channel,
        language=language,
        subject=subject,
        body=body,
        updated_by=updated_by,
    )
    return template_out(row, event_type, channel, language), created


async def delete_template(
    session: AsyncSession, event_type: str, channel: str, language: str
) -> None:
    """Remove the company's template (the built-in one applies again); NotFound if none."""
    if not await queries.delete_template(session, event_type, channel, language):
        raise NotFound("The company has no own template for this event, channel and language.")


async def preview(session: AsyncSession, payload: PreviewIn) -> PreviewOut:
    """Render with sample data: the given body/subject, else the company's, else the default."""
    check_subject(payload.channel, payload.subject)
    row = None
    if payload.body is None or (payload.subject is None and payload.channel == "email"):
        row = await queries.get_template(
            session, payload.event_type, payload.channel, payload.language
        )
    stored_subject, stored_body, _ = effective_of(
        row, payload.event_type, payload.channel, payload.language
    )
    body = stored_body if payload.body is None else payload.body
    subject = stored_subject if payload.subject is None else payload.subject
    await in_thread(validate_template, payload.event_type, body, subject)
    message = await in_thread(
        render,
        payload.event_type,
        payload.channel,
        payload.language,
        sample_raw(payload.event_type, payload.language),
        body=body,
        subject=subject,
    )
    return PreviewOut(subject=message.subject, body=message.body)
