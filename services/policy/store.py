"""Database reads and writes of the policy service: configs, their audit trail, modifications."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.policy.config_schema import DEFAULT_LEVEL, POLICY_TYPES, merge_levels
from services.policy.evaluation import Policy
from shared.db.raw_sql import RawPool
from shared.db.scoped import execute, scoped
from shared.db.tenancy import PER_CALL
from shared.db.types import utcnow
from shared.hierarchy import (
    Chain,
    ConfigCache,
    Entry,
    Memo,
    cache_key,
    effective_entry,
    record_change,
    resolve_effective,
    resolve_effective_warm,
    scoped_row,
    upsert_scoped,
)
from shared.models import (
    Appointment,
    AppointmentModification,
    PolicyConfiguration,
    PolicyConfigurationChange,
)
from shared.redis.scripts import ScriptCall

NAMESPACE: Final = "policy"


async def get_config(
    session: AsyncSession, level: str, entity_id: str, policy_type: str, *, lock: bool = False
) -> PolicyConfiguration | None:
    """The stored config of one scope of the session's company (row-locked with `lock`)."""
    scope = {"level": level, "entity_id": entity_id, "policy_type": policy_type}
    row: PolicyConfiguration | None = await scoped_row(
        session, PolicyConfiguration, scope, lock=lock
    )
    return row


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
    scope = {"level": level, "entity_id": entity_id, "policy_type": policy_type}
    record_change(session, PolicyConfigurationChange, scope, before, after, changed_by)


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

    def fill(row: PolicyConfiguration) -> None:
        row.config = dict(config)
        row.updated_by = changed_by
        row.updated_at = utcnow()

    scope = {"level": level, "entity_id": entity_id, "policy_type": policy_type}
    row, before = await upsert_scoped(session, PolicyConfiguration, scope, fill)
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
    return row, before is None


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


def _merge(policy_type: str) -> Callable[[Mapping[str, Mapping[str, Any]]], dict[str, Any]]:
    def merge(levels: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        config, sources = merge_levels(levels, policy_type=policy_type)
        return {"config": config, "sources": sources}

    return merge


_FILTERS: Final = {policy_type: {"policy_type": policy_type} for policy_type in POLICY_TYPES}


def _filters(policy_type: str) -> Mapping[str, Any]:
    return _FILTERS.get(policy_type) or {"policy_type": policy_type}


async def effective_config(
    session: AsyncSession, cache: ConfigCache | None, chain: Chain, policy_type: str
) -> dict[str, Any]:
    """{"config": merged, "sources": {key: level}} of the chain, cached per company version."""
    entry = await _effective_entry(session, cache, chain, policy_type)
    result: dict[str, Any] = entry.value
    return result


async def _effective_entry(
    session: AsyncSession, cache: ConfigCache | None, chain: Chain, policy_type: str
) -> Entry:
    return await effective_entry(
        session, cache, chain, PolicyConfiguration, _filters(policy_type), _merge(policy_type)
    )


async def resolve_effective_config(
    session: AsyncSession,
    cache: ConfigCache | None,
    company_id: str,
    policy_type: str,
    *,
    branch_id: str | None = None,
    service_id: str | None = None,
    staff_id: str | None = None,
) -> tuple[Chain, dict[str, Any]]:
    """The target's chain (404/422 for unknown or contradicting ids) and its effective config,
    the cache read overlapping the chain's SELECT when the ids fix the chain."""
    chain, entry = await resolve_effective(
        session,
        cache,
        company_id,
        PolicyConfiguration,
        _filters(policy_type),
        _merge(policy_type),
        branch_id=branch_id,
        service_id=service_id,
        staff_id=staff_id,
    )
    result: dict[str, Any] = entry.value
    return chain, result


async def resolve_effective_config_warm(
    reads: RawPool,
    cache: ConfigCache,
    company_id: str,
    policy_type: str,
    ids: Mapping[str, str | None],
) -> tuple[Chain, dict[str, Any]] | None:
    """`resolve_effective_config` through raw reads when cached; None otherwise."""
    found = await resolve_effective_warm(reads, cache, company_id, _filters(policy_type), ids)
    if found is None:
        return None
    chain, entry = found
    result: dict[str, Any] = entry.value
    return chain, result


# Parsed policies by (company, version, chain + type): evaluation skips re-validating the
# cached config while the company's version is unchanged (each read still asks Redis for it).
policies = Memo()


async def effective_policy(
    session: AsyncSession, cache: ConfigCache | None, chain: Chain, policy_type: str
) -> Policy:
    """The chain's effective config as a typed Policy (an invalid stored config: 422)."""
    return _policy(await _effective_entry(session, cache, chain, policy_type), chain, policy_type)


def _policy(entry: Entry, chain: Chain, policy_type: str) -> Policy:
    key = f"{policy_type}:{chain.cache_key()}"
    policy: Policy = policies.get_or_make(
        chain.company_id, entry, key, lambda: Policy.from_config(policy_type, _configured(entry))
    )
    return policy


def _configured(entry: Entry) -> dict[str, Any]:
    """The effective config's keys that some level sets: whether hours_before is set decides
    whether the time before the deadline is free (ADR 0016); the rest take the same defaults."""
    sources: Mapping[str, str] = entry.value.get("sources") or {}
    config: Mapping[str, Any] = entry.value["config"]
    return {key: value for key, value in config.items() if sources.get(key) != DEFAULT_LEVEL}


def policy_read(cache: ConfigCache, chain: Chain, policy_type: str) -> ScriptCall:
    """The cache read of the chain's effective config, for a pipeline (`cached_policy`)."""
    return cache.read_call(chain.company_id, cache_key(chain, _filters(policy_type)))


def cached_policy(cache: ConfigCache, chain: Chain, policy_type: str, reply: Any) -> Policy | None:
    """`effective_policy` from the reply of `policy_read` (no SQL); None on a miss or when
    Redis failed, which the caller's fallback to `effective_policy` counts."""
    version, cached = cache.read_reply(reply, first_look=True)
    if version is None or cached is None:
        return None
    return _policy(Entry(version, cached), chain, policy_type)


_M = AppointmentModification
# Built once, scoped per call (shared.db.scoped); the quota index's range scan.
RECENT_MODIFICATIONS: Final = scoped(
    sa.select(_M.created_at).where(
        _M.customer_id == sa.bindparam("customer_id"),
        _M.modification_type == sa.bindparam("modification_type"),
        _M.created_at > sa.bindparam("since"),
    ),
    PER_CALL,
)
# How often an appointment has been moved: correlated to appointments.id in an outer query
# (filtered by company when that query is scoped).
RESCHEDULES_OF_APPOINTMENT: Final = (
    sa.select(sa.func.count())
    .select_from(_M)
    .where(_M.appointment_id == Appointment.id, _M.modification_type == "reschedule")
    .scalar_subquery()
)


def recent_params(customer_id: str, modification_type: str, since: datetime) -> dict[str, Any]:
    """The parameters of RECENT_MODIFICATIONS (the tenant is given where it runs)."""
    return {"customer_id": customer_id, "modification_type": modification_type, "since": since}


async def recent_modifications(
    session: AsyncSession,
    company_id: str,
    customer_id: str,
    modification_type: str,
    since: datetime,
) -> list[datetime]:
    """The customer's (of `company_id`) modifications of a type after `since`.

    The quota index's range scan; Core on the session's connection, scoped per call.
    """
    params = recent_params(customer_id, modification_type, since)
    result = await execute(session, RECENT_MODIFICATIONS, params, company_id=company_id)
    return list(result.scalars())
