"""Versioned cache keys for Cal.com free slots, so a webhook can make every replica's cache stale
at once without scanning keys: each (company, event type) has a version number in Redis that
is part of every cache key; invalidating is one INCR.

A reader takes the version BEFORE asking Cal.com and stores the answer under that version, so
an answer that raced with an invalidation lands under a version nobody reads any more.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.observability.metrics import CACHE_REQUESTS

log = logging.getLogger(__name__)
TTL_S = 600  # the 10-minute TTL of cached Cal.com slots
CACHE = "calcom_slots"  # the `cache` label of cache_requests_total
VERSION_TTL_S = 7 * 86400  # far beyond TTL_S: an expired version cannot resurrect an entry


def version_key(company_id: str, event_type_id: int) -> str:
    return f"calcom:slots:ver:{company_id}:{event_type_id}"


def company_version_key(company_id: str) -> str:
    """Bumped when an event names no event type we know: stales all of the company's slots."""
    return f"calcom:slots:ver:{company_id}:*all*"


async def current_version(redis: Redis, company_id: str, event_type_id: int) -> int:
    """The cache generation of this event type: its own counter plus the company-wide one.

    Both only ever grow (until they expire, long after every entry they versioned), so the sum
    changes whenever either is bumped.
    """
    own, company_wide = await redis.mget(
        version_key(company_id, event_type_id), company_version_key(company_id)
    )
    return int(own or 0) + int(company_wide or 0)


def slots_key(
    company_id: str, event_type_id: int, version: int, time_zone: str, first: date, last: date
) -> str:
    """Key of Cal.com's answer for the local days `first`..`last` (inclusive) in `time_zone`."""
    return (
        f"calcom:slots:{company_id}:{event_type_id}:v{version}:"
        f"{time_zone}:{first.isoformat()}:{last.isoformat()}"
    )


def encode(starts: frozenset[datetime]) -> str:
    return json.dumps(sorted(s.astimezone(UTC).isoformat() for s in starts))


def decode(raw: bytes | str) -> frozenset[datetime] | None:
    """The cached starts, or None for an entry that is not ours to trust (read as a miss)."""
    try:
        items = json.loads(raw)
        starts = frozenset(datetime.fromisoformat(item) for item in items)
    except (ValueError, TypeError):
        return None
    if any(s.tzinfo is None for s in starts):
        return None
    return starts


async def read(
    redis: Redis, company_id: str, event_type_id: int, time_zone: str, first: date, last: date
) -> tuple[int | None, frozenset[datetime] | None]:
    """(version, cached starts or None). A Redis fault reads as a miss with version None, which
    tells the caller not to store what it fetches (it could not know the current version)."""
    try:
        version = await current_version(redis, company_id, event_type_id)
        raw = await redis.get(slots_key(company_id, event_type_id, version, time_zone, first, last))
    except RedisError as exc:
        CACHE_REQUESTS.labels(CACHE, "error").inc()
        log.warning("slot cache read failed", extra={"error": str(exc)})
        return None, None
    starts = decode(raw) if raw is not None else None
    CACHE_REQUESTS.labels(CACHE, "miss" if starts is None else "hit").inc()
    return version, starts


async def write(
    redis: Redis,
    company_id: str,
    event_type_id: int,
    version: int,
    time_zone: str,
    first: date,
    last: date,
    starts: frozenset[datetime],
) -> None:
    """Store Cal.com's answer for TTL_S under the version read before asking. Never raises."""
    try:
        await redis.set(
            slots_key(company_id, event_type_id, version, time_zone, first, last),
            encode(starts),
            ex=TTL_S,
        )
    except RedisError as exc:
        log.warning("slot cache write failed", extra={"error": str(exc)})


async def invalidate(redis: Redis, company_id: str, event_type_id: int | None) -> None:
    """Make the cached slots of this event type stale (all of the company's when None known).

    Never raises: a Redis fault leaves entries to expire by their TTL, and it must not fail
    the webhook that asked.
    """
    key = (
        version_key(company_id, event_type_id)
        if event_type_id is not None
        else company_version_key(company_id)
    )
    try:
        await redis.incr(key)
        await redis.expire(key, VERSION_TTL_S)
    except RedisError as exc:
        log.warning("slot cache invalidation failed", extra={"error": str(exc)})
