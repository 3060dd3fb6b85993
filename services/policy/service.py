"""The policy use cases: evaluate a change, the effective config, one level's config.

Each has one body, used by the FastAPI routes (with the request's session) and the lean
routes (with `Reads` on the raw pool, a session opened only on a cache miss). Warm, an
evaluation costs two statements (the subject; the customer's recent changes) and one Redis
round trip (the rate-limit hit, when the caller has not counted it, plus the effective
config's version and entry); the parsed Policy is memoized per company version.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from services.policy import queries
from services.policy.config_schema import DEFAULT_LEVEL, POLICY_TYPES, merge_levels, validate_config
from services.policy.evaluation import (
    Decision,
    Policy,
    as_utc,
    can_cancel,
    can_reschedule,
    deadline_local_iso,
)
from services.policy.schemas import (
    ChainOut,
    EffectiveOut,
    EvaluateIn,
    EvaluationOut,
    PolicyConfigIn,
    PolicyOut,
    PolicyType,
    QuotaOut,
)
from services.policy.subjects import Subject, load_subject
from shared.db.types import utcnow
from shared.errors import NotFound
from shared.hierarchy.cache import ConfigCache, Entry, Memo, Send
from shared.hierarchy.chain import Chain
from shared.hierarchy.effective import effective_entry, resolve_effective
from shared.hierarchy.queries import check_entity
from shared.hierarchy.reads import Reads
from shared.hierarchy.writes import record_change, upsert_scoped
from shared.models import PolicyConfiguration, PolicyConfigurationChange
from shared.redis.scripts import ScriptCall
from shared.web.auth import KeyLimit

NAMESPACE: Final = "policy"
POLICY_TYPE: Final = {"cancel": "cancellation", "reschedule": "reschedule"}
_FILTERS: Final = {policy_type: {"policy_type": policy_type} for policy_type in POLICY_TYPES}
# Parsed policies by (company, version, chain + type): evaluation skips re-validating the
# cached config while the company's version is unchanged (each read still asks Redis for it).
policies = Memo()


async def evaluate(
    source: Reads | AsyncSession,
    cache: ConfigCache | None,
    company_id: str,
    body: EvaluateIn,
    limit: KeyLimit | None = None,
) -> EvaluationOut:
    """The decision for `body.action` on the subject at `body.at` (default now).

    `limit`: the caller's rate limit when not yet counted (the lean route); its hit rides in
    the config cache read's round trip, or is counted alone when the evaluation ends before.
    """
    reads = Reads.of(source, company_id)
    hit = _PendingHit(limit)
    at = body.at or utcnow()
    try:
        subject = await load_subject(reads, company_id, body)
        policy = await effective_policy(
            reads,
            cache,
            subject.chain,
            POLICY_TYPE[body.action],
            send=None if limit is None else hit.send,
        )
    finally:
        await hit.count()
    changes: list[datetime] = []
    if subject.customer_id is not None:
        since = as_utc(at, "at") - timedelta(days=policy.window_days)
        changes = await queries.recent_modifications(
            reads, company_id, subject.customer_id, body.action, since
        )
    return decide(body, at, subject, policy, changes)


class _PendingHit:
    """A rate-limit hit counted exactly once: with the first cache read, else alone."""

    def __init__(self, limit: KeyLimit | None) -> None:
        self.limit = limit

    async def send(self, call: ScriptCall) -> Any:
        limit, self.limit = self.limit, None
        assert limit is not None  # sent once: the evaluation reads the cache once
        return await limit.hit_with(call)

    async def count(self) -> None:
        limit, self.limit = self.limit, None
        if limit is not None:
            await limit.hit()


async def effective(
    source: Reads | AsyncSession,
    cache: ConfigCache | None,
    company_id: str,
    policy_type: PolicyType,
    *,
    branch_id: str | None = None,
    service_id: str | None = None,
    staff_id: str | None = None,
) -> EffectiveOut:
    """The target's chain (404/422 for unknown or contradicting ids) and its levels merged,
    each key with its level; the cache read overlaps the chain's SELECT when it can."""
    chain, entry = await resolve_effective(
        source,
        cache,
        company_id,
        PolicyConfiguration,
        _filters(policy_type),
        _merge(policy_type),
        branch_id=branch_id,
        service_id=service_id,
        staff_id=staff_id,
    )
    return EffectiveOut(
        policy_type=policy_type,
        config=entry.value["config"],
        sources=entry.value["sources"],
        chain=ChainOut(
            company_id=chain.company_id,
            branch_id=chain.branch_id,
            service_id=chain.service_id,
            staff_id=chain.staff_id,
        ),
    )


async def effective_policy(
    source: Reads | AsyncSession,
    cache: ConfigCache | None,
    chain: Chain,
    policy_type: str,
    *,
    send: Send | None = None,
) -> Policy:
    """The chain's effective config as a typed Policy (an invalid stored config: 422);
    `send` as in `ConfigCache.read`."""
    entry = await effective_entry(
        source,
        cache,
        chain,
        PolicyConfiguration,
        _filters(policy_type),
        _merge(policy_type),
        send=send,
    )
    key = f"{policy_type}:{chain.cache_key()}"
    policy: Policy = policies.get_or_make(
        chain.company_id, entry, key, lambda: Policy.from_config(policy_type, _configured(entry))
    )
    return policy


def _merge(policy_type: str) -> Callable[[Mapping[str, Mapping[str, Any]]], dict[str, Any]]:
    # The cached document: {"config": merged, "sources": {key: level}} (data, kept as JSON).
    def merge(levels: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        config, sources = merge_levels(levels, policy_type=policy_type)
        return {"config": config, "sources": sources}

    return merge


def _filters(policy_type: str) -> Mapping[str, Any]:
    return _FILTERS.get(policy_type) or {"policy_type": policy_type}


def _configured(entry: Entry) -> dict[str, Any]:
    """The effective config's keys that some level sets: whether hours_before is set decides
    whether the time before the deadline is free (ADR 0016); the rest take the same defaults."""
    sources: Mapping[str, str] = entry.value.get("sources") or {}
    config: Mapping[str, Any] = entry.value["config"]
    return {key: value for key, value in config.items() if sources.get(key) != DEFAULT_LEVEL}


def decide(
    body: EvaluateIn, at: datetime, subject: Subject, policy: Policy, changes: list[datetime]
) -> EvaluationOut:
    """The pure core's decision on `subject`, as the API answers it."""
    common: dict[str, Any] = {
        "start": subject.start,
        "status": subject.status,
        "at": at,
        "config": policy,
        "price": subject.price,
        "currency": subject.currency,
        "recent_changes": changes,
    }
    decision: Decision
    if body.action == "cancel":
        decision = can_cancel(**common)
    else:
        decision = can_reschedule(**common, reschedule_count=subject.reschedule_count)
    return EvaluationOut(
        allowed=decision.allowed,
        reason=decision.reason.value,
        fee=f"{decision.fee:.2f}",
        currency=decision.currency,
        deadline=deadline_local_iso(decision.deadline, subject.timezone),
        hours_before_appointment=f"{decision.hours_before_appointment:.2f}",
        quota=QuotaOut(
            used=decision.quota.used,
            limit=decision.quota.limit,
            window_days=decision.quota.window_days,
        ),
        action=body.action,
        policy_type=POLICY_TYPE[body.action],
        appointment_id=subject.appointment_id,
    )


async def get_policy(
    session: AsyncSession, level: str, entity_id: str, policy_type: str
) -> PolicyOut:
    """The stored config of one level (not merged); 404 when none is set."""
    row = await queries.stored_config(session, level, entity_id, policy_type)
    if row is None:
        raise NotFound("No policy is set at this level.")
    return _policy_out(row)


async def put_policy(
    session: AsyncSession,
    cache: ConfigCache,
    *,
    company_id: str,
    level: str,
    entity_id: str,
    policy_type: str,
    config: PolicyConfigIn,
    changed_by: str,
) -> tuple[PolicyOut, bool]:
    """Validate and store one level's config (canonical), audited; (answer, created). The
    company's cached configs are invalidated once the transaction commits."""
    normalized = validate_config(level, policy_type, config.configured())
    await check_entity(session, company_id, level, entity_id)

    def fill(row: PolicyConfiguration) -> None:
        row.config = dict(normalized)
        row.updated_by = changed_by
        row.updated_at = utcnow()

    scope = {"level": level, "entity_id": entity_id, "policy_type": policy_type}
    row, before = await upsert_scoped(session, PolicyConfiguration, scope, fill)
    record_change(session, PolicyConfigurationChange, scope, before, normalized, changed_by)
    await session.flush()
    cache.bump_after_commit(session, company_id)
    return _policy_out(row), before is None


async def delete_policy(
    session: AsyncSession,
    cache: ConfigCache,
    *,
    company_id: str,
    level: str,
    entity_id: str,
    policy_type: str,
    changed_by: str,
) -> None:
    """Remove one level's config (audited with after = null); 404 when none is set."""
    row = await queries.stored_config(session, level, entity_id, policy_type, lock=True)
    if row is None:
        raise NotFound("No policy is set at this level.")
    scope = {"level": level, "entity_id": entity_id, "policy_type": policy_type}
    record_change(session, PolicyConfigurationChange, scope, row.config, None, changed_by)
    await session.delete(row)
    await session.flush()
    cache.bump_after_commit(session, company_id)


def _policy_out(row: PolicyConfiguration) -> PolicyOut:
    return PolicyOut(
        level=row.level,
        entity_id=row.entity_id,
        policy_type=row.policy_type,
        config=row.config,
        updated_at=row.updated_at.isoformat(),
        updated_by=row.updated_by,
    )
