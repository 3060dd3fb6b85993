"""Database reads and writes of the policy service: configs, their audit trail, modifications."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.policy.config_schema import merge_levels
from shared.db.types import utcnow
from shared.hierarchy import Chain, ConfigCache, effective
from shared.models import (
    AppointmentModification,
    PolicyConfiguration,
    PolicyConfigurationChange,
)

NAMESPACE: Final = "policy"


async def get_config(
    session: AsyncSession, level: str, entity_id: str, policy_type: str, *, lock: bool = False
) -> PolicyConfiguration | None:
    """The stored config of one scope of the session's company (row-locked with `lock`)."""
    statement = sa.select(PolicyConfiguration).where(
        PolicyConfiguration.level == level,
        PolicyConfiguration.entity_id == entity_id,
        PolicyConfiguration.policy_type == policy_type,
    )
    if lock:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return (await session.scalars(statement)).first()


def _record_change(
    session: AsyncSession,
    *,
    level: str,
    entity_id: str,
    policy_type: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    changed_by: str,
) -> None:
    session.add(
        PolicyConfigurationChange(
            level=level,
            entity_id=entity_id,
            policy_type=policy_type,
            before=None if before is None else dict(before),
            after=None if after is None else dict(after),
            changed_by=changed_by,
            changed_at=utcnow(),
        )
    )


async def put_config(
    session: AsyncSession,
    cache: ConfigCache,
    *,
    company_id: str,
    level: str,
    entity_id: str,
    policy_type: str,
    config: Mapping[str, Any],
    changed_by: str,
) -> tuple[PolicyConfiguration, bool]:
    """Insert or replace one scope's (already validated) config; (row, created)."""
    row = await get_config(session, level, entity_id, policy_type, lock=True)
    created = row is None
    before: Mapping[str, Any] | None = None
    if row is None:
        row = PolicyConfiguration(
            level=level,
            entity_id=entity_id,
            policy_type=policy_type,
            config=dict(config),
            updated_by=changed_by,
        )
        try:
            async with session.begin_nested():
                session.add(row)
        except IntegrityError:
            # A concurrent first PUT of this scope committed in between: update its row.
            row = await get_config(session, level, entity_id, policy_type, lock=True)
            assert row is not None
            created = False
    if not created:
        before = dict(row.config)
        row.config = dict(config)
        row.updated_by = changed_by
        row.updated_at = utcnow()
    _record_change(
        session,
        level=level,
        entity_id=entity_id,
        policy_type=policy_type,
        before=before,
        after=config,
        changed_by=changed_by,
    )
    await session.flush()
    cache.bump_after_commit(session, company_id)
    return row, created


async def delete_config(
    session: AsyncSession,
    cache: ConfigCache,
    *,
    company_id: str,
    level: str,
    entity_id: str,
    policy_type: str,
    changed_by: str,
) -> bool:
    """Remove one scope's config; False when there was none."""
    row = await get_config(session, level, entity_id, policy_type, lock=True)
    if row is None:
        return False
    _record_change(
        session,
        level=level,
        entity_id=entity_id,
        policy_type=policy_type,
        before=row.config,
        after=None,
        changed_by=changed_by,
    )
    await session.delete(row)
    await session.flush()
    cache.bump_after_commit(session, company_id)
    return True


async def effective_config(
    session: AsyncSession, cache: ConfigCache | None, chain: Chain, policy_type: str
) -> dict[str, Any]:
    """{"config": merged, "sources": {key: level}} of the chain, cached per company version."""

    def merge(levels: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        config, sources = merge_levels(levels, policy_type=policy_type)
        return {"config": config, "sources": sources}

    result: dict[str, Any] = await effective(
        session, cache, chain, PolicyConfiguration, {"policy_type": policy_type}, merge
    )
    return result


async def recent_modifications(
    session: AsyncSession, customer_id: str, modification_type: str, since: datetime
) -> list[datetime]:
    """The customer's modifications of a type after `since` (the quota index's range scan)."""
    rows = await session.scalars(
        sa.select(AppointmentModification.created_at).where(
            AppointmentModification.customer_id == customer_id,
            AppointmentModification.modification_type == modification_type,
            AppointmentModification.created_at > since,
        )
    )
    return list(rows)


async def reschedule_count(session: AsyncSession, appointment_id: str) -> int:
    """How often this appointment has been rescheduled already."""
    count = await session.scalar(
        sa.select(sa.func.count())
        .select_from(AppointmentModification)
        .where(
            AppointmentModification.appointment_id == appointment_id,
            AppointmentModification.modification_type == "reschedule",
        )
    )
    return int(count or 0)
