"""Database reads and writes of notification configs: rows, their audit trail, the effective
config of a target through the shared hierarchy code (same never-stale cache as policies).

The effective config is the cached JSON document of `merge.merge_levels`, hence a dict.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.notifications.configs.merge import merge_levels
from shared.db.types import utcnow
from shared.hierarchy.cache import ConfigCache
from shared.hierarchy.chain import Chain
from shared.hierarchy.effective import effective, resolve_effective
from shared.hierarchy.writes import record_change, scoped_row, upsert_scoped
from shared.models import NotificationConfiguration, NotificationConfigurationChange

NAMESPACE: Final = "notification"
_N = NotificationConfiguration


def _stored(row: Any) -> Mapping[str, Any]:
    config: Mapping[str, Any] = row.config or {}
    return config


def _scope(level: str, entity_id: str, event_type: str, channel: str) -> dict[str, str]:
    return {"level": level, "entity_id": entity_id, "event_type": event_type, "channel": channel}


async def get_config(
    session: AsyncSession,
    level: str,
    entity_id: str,
    event_type: str,
    channel: str,
    *,
    lock: bool = False,
) -> NotificationConfiguration | None:
    row: NotificationConfiguration | None = await scoped_row(
        session, _N, _scope(level, entity_id, event_type, channel), lock=lock
    )
    return row


async def list_configs(
    session: AsyncSession, *, level: str | None = None, entity_id: str | None = None
) -> list[NotificationConfiguration]:
    statement = sa.select(_N).order_by(_N.level, _N.entity_id, _N.event_type, _N.channel)
    if level is not None:
        statement = statement.where(_N.level == level)
    if entity_id is not None:
        statement = statement.where(_N.entity_id == entity_id)
    return list((await session.scalars(statement)).all())


def _apply(row: NotificationConfiguration, config: Mapping[str, Any]) -> None:
    """The sparse config is the truth; the columns mirror it for people reading the table."""
    row.config = dict(config)
    row.enabled = bool(config.get("enabled", True))
    row.recipients = list(config.get("recipients", []))
    row.template_override = config.get("template_override")
    row.reminder_offset_minutes = config.get("reminder_offset_minutes")
    row.updated_at = utcnow()


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
) -> tuple[NotificationConfiguration, bool]:
    """Insert or replace one scope's (validated) config; (row, created). Audited; bumps the
    company's config version after commit."""
    scope = _scope(level, entity_id, event_type, channel)
    row, before = await upsert_scoped(session, _N, scope, lambda row: _apply(row, config))
    record_change(session, NotificationConfigurationChange, scope, before, config, changed_by)
    await session.flush()
    cache.bump_after_commit(session, company_id)
    return row, before is None


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
) -> bool:
    row = await get_config(session, level, entity_id, event_type, channel, lock=True)
    if row is None:
        return False
    scope = _scope(level, entity_id, event_type, channel)
    record_change(session, NotificationConfigurationChange, scope, row.config, None, changed_by)
    await session.delete(row)
    await session.flush()
    cache.bump_after_commit(session, company_id)
    return True


def _merge(event_type: str, channel: str) -> Callable[[Mapping[str, Mapping[str, Any]]], Any]:
    def merge(levels: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        return merge_levels(levels, event_type, channel)

    return merge


def _filters(event_type: str, channel: str) -> dict[str, str]:
    return {"event_type": event_type, "channel": channel}


async def effective_config(
    session: AsyncSession, cache: ConfigCache | None, chain: Chain, event_type: str, channel: str
) -> dict[str, Any]:
    """{"config": merged, "sources": {key: level}} of a known chain (the notify job's path)."""
    result: dict[str, Any] = await effective(
        session,
        cache,
        chain,
        NotificationConfiguration,
        _filters(event_type, channel),
        _merge(event_type, channel),
        to_config=_stored,
    )
    return result


async def resolve_effective_config(
    session: AsyncSession,
    cache: ConfigCache | None,
    company_id: str,
    event_type: str,
    channel: str,
    *,
    branch_id: str | None = None,
    service_id: str | None = None,
    staff_id: str | None = None,
) -> tuple[Chain, dict[str, Any]]:
    """The target's chain (404/422 for unknown or contradicting ids) and its effective config."""
    chain, entry = await resolve_effective(
        session,
        cache,
        company_id,
        NotificationConfiguration,
        _filters(event_type, channel),
        _merge(event_type, channel),
        branch_id=branch_id,
        service_id=service_id,
        staff_id=staff_id,
        to_config=_stored,
    )
    result: dict[str, Any] = entry.value
    return chain, result
