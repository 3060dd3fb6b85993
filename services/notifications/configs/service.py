"""Use cases of the notification config API, one transaction (the request's) each."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.notifications.configs import queries
from services.notifications.configs.schemas import ConfigListOut, ConfigOut, EffectiveOut
from services.notifications.configs.validation import check_scope, validate_config
from services.notifications.templates.budget import in_thread
from shared.errors import NotFound
from shared.hierarchy.cache import ConfigCache
from shared.hierarchy.queries import check_entity
from shared.models import NotificationConfiguration

NOT_SET = "No notification config is set at this level."


def config_out(row: NotificationConfiguration) -> ConfigOut:
    return ConfigOut(
        level=row.level,
        entity_id=row.entity_id,
        event_type=row.event_type,
        channel=row.channel,
        config=row.config or {},
        updated_at=row.updated_at.isoformat(),
    )


async def effective(
    session: AsyncSession,
    cache: ConfigCache,
    company_id: str,
    event_type: str,
    channel: str,
    *,
    branch_id: str | None = None,
    service_id: str | None = None,
    staff_id: str | None = None,
) -> EffectiveOut:
    """The levels merged from company down to the most specific target, with provenance."""
    check_scope("company", event_type, channel)
    chain, result = await queries.resolve_effective_config(
        session,
        cache,
        company_id,
        event_type,
        channel,
        branch_id=branch_id,
        service_id=service_id,
        staff_id=staff_id,
    )
    return EffectiveOut(
        event_type=event_type,
        channel=channel,
        config=result["config"],
        sources=result["sources"],
        chain={
            "company_id": chain.company_id,
            "branch_id": chain.branch_id,
            "service_id": chain.service_id,
            "staff_id": chain.staff_id,
        },
    )


async def list_configs(
    session: AsyncSession, *, level: str | None = None, entity_id: str | None = None
) -> ConfigListOut:
    """Every stored config of the company (optionally of one level or entity), not merged."""
    rows = await queries.list_configs(session, level=level, entity_id=entity_id)
    return ConfigListOut(items=[config_out(row) for row in rows])


async def put_config(
    session: AsyncSession,
    cache: ConfigCache,
    *,
    company_id: str,
    level: str,
    entity_id: str,
    event_type: str,
    channel: str,
    config: Mapping[str, Any],
    changed_by: str,
) -> tuple[ConfigOut, bool]:
    """Set one level's config (validated, normalized, audited); (the config, created)."""
    # Off the event loop: a template_override is trial-rendered under its budget (ADR 0013).
    normalized = await in_thread(validate_config, level, event_type, channel, config)
    await check_entity(session, company_id, level, entity_id)
    row, created = await queries.put_config(
        session,
        cache,
        company_id=company_id,
        level=level,
        entity_id=entity_id,
        event_type=event_type,
        channel=channel,
        config=normalized,
        changed_by=changed_by,
    )
    return config_out(row), created


async def get_config(
    session: AsyncSession, level: str, entity_id: str, event_type: str, channel: str
) -> ConfigOut:
    """The stored config of one level (not merged); NotFound when none is set."""
    check_scope(level, event_type, channel)
    row = await queries.get_config(session, level, entity_id, event_type, channel)
    if row is None:
        raise NotFound(NOT_SET)
    return config_out(row)


async def delete_config(
    session: AsyncSession,
    cache: ConfigCache,
    *,
    company_id: str,
    level: str,
    entity_id: str,
    event_type: str,
    channel: str,
    changed_by: str,
) -> None:
    """Remove one level's config (audited); NotFound when none is set."""
    check_scope(level, event_type, channel)
    deleted = await queries.delete_config(
        session,
        cache,
        company_id=company_id,
        level=level,
        entity_id=entity_id,
        event_type=event_type,
        channel=channel,
        changed_by=changed_by,
    )
    if not deleted:
        raise NotFound(NOT_SET)
