"""Cal.com's free slots as a second opinion on the local calendar, never as a single point of
failure.

For a company with Cal.com and a service mapped to a Cal.com event type, a local free slot is
offered only if Cal.com also lists its start (`GET /v2/slots`): the business may have blocked
time in Cal.com that we have not heard of yet. Cal.com's answer is cached in Redis for
`slots_cache.TTL_S` under a versioned key that every Cal.com webhook bumps.

The seeds' SLA is "bookable while Cal.com is down": when the breaker is open, Cal.com fails or
does not answer within `TIMEOUT_S`, the local calendar alone decides (logged and counted in
`calcom_availability_fallback_total{reason}`), the booking syncs later through the outbox, and
nothing is cached. Within one unit of work (one session) each answer, and a fallback, is
remembered, so a request asks Cal.com at most once per range and waits for a dead Cal.com once.

A reschedule asks with the Cal.com uid of the booking being moved (`bookingUidToReschedule`):
Cal.com then does not count that booking as busy, so it can move within its own time. Those
answers are remembered per session under a key that includes the uid, but never cached in
Redis: each is good for one booking only (a shared cache would hold one entry per booking moved,
almost never read twice), and a move asks once or twice (the day, then the week of alternatives).

The local slot fence stays the only authority against double booking; this only narrows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

import httpx
from prometheus_client import Counter
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.scheduling.availability import Slot
from shared.config import Settings
from shared.db.engine import Database
from shared.integrations.calcom import slots_cache
from shared.integrations.calcom.call_log import CallLog
from shared.integrations.calcom.client import CalcomClient
from shared.integrations.calcom.errors import (
    CalcomError,
    CalcomRejected,
    CalcomTransient,
    CircuitOpen,
)
from shared.models import Company, Service

log = logging.getLogger(__name__)

TIMEOUT_S = 1.5  # the seeds' SLA: slower than this and the local calendar answers alone
# Hard bound on the whole lookup (breaker round trips included). Above TIMEOUT_S so that a
# slow Cal.com ends as the client's own timeout, which the breaker counts as a failure.
DEADLINE_S = TIMEOUT_S + 0.5
# One local day either side: Cal.com reads the range's dates as UTC days, so the widening
# covers every instant of the local days whatever the branch's offset.
_MARGIN = timedelta(days=1)

FALLBACKS = Counter(
    "calcom_availability_fallback_total",
    "Availability answered from the local calendar alone because Cal.com could not say.",
    ["reason"],
)

_MEMO = "calcom_slots"  # session.info: {(event type, tz, first, last, reschedule uid): starts}
_DEGRADED = "calcom_slots_degraded"  # session.info: the reason Cal.com was given up on


class DeferredCallLog(CallLog):
    """Writes the `api_call_logs` row in the background instead of inline.

    A slot lookup runs inside the caller's transaction, which on SQLite holds the write lock
    for a booking: an inline record (its own transaction) would wait for that very lock. The
    background task waits for the caller's commit or rollback instead, and the answer never
    waits for the audit insert.
    """

    def __init__(self, db: Database, pending: set[asyncio.Task[None]]) -> None:
        super().__init__(db)
        self._pending = pending

    async def record(self, **fields: Any) -> None:
        task = asyncio.get_running_loop().create_task(CallLog.record(self, **fields))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)


@dataclass
class CalcomAccess:
    """What a process needs to ask Cal.com for slots (one per app; see `using`)."""

    settings: Settings
    http: httpx.AsyncClient
    redis: Redis
    db: Database
    pending_logs: set[asyncio.Task[None]] = field(default_factory=set)

    def client(self, company: Company) -> CalcomClient:
        client = CalcomClient.for_company(
            company, settings=self.settings, http=self.http, redis=self.redis, db=None
        )
        client.call_log = DeferredCallLog(self.db, self.pending_logs)
        return client

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Let pending call-log writes finish (at shutdown)."""
        if self.pending_logs:
            await asyncio.wait(set(self.pending_logs), timeout=timeout_s)


_access: ContextVar[CalcomAccess | None] = ContextVar("calcom_access", default=None)


@contextmanager
def using(access: CalcomAccess | None) -> Iterator[None]:
    """Make `access` the Cal.com access of the code run inside (a request, a job)."""
    token = _access.set(access)
    try:
        yield
    finally:
        _access.reset(token)


def restrict(slots: Sequence[Slot], allowed: frozenset[datetime] | None) -> list[Slot]:
    """The slots whose start Cal.com also lists (all of them when Cal.com does not constrain)."""
    if allowed is None:
        return list(slots)
    return [slot for slot in slots if slot.start in allowed]


async def calcom_starts(
    session: AsyncSession,
    *,
    service: Service,
    time_zone: str,
    first_date: date,
    days: int,
    company: Company | None = None,
    reschedule_uid: str | None = None,
) -> frozenset[datetime] | None:
    """The starts (UTC) Cal.com lists as free for the service's event type on the local days
    `first_date`.. `first_date + days - 1`, or None when Cal.com does not constrain them: no
    integration, or Cal.com unavailable (the fallback). With `reschedule_uid` (the Cal.com
    booking being moved), that booking does not count as busy."""
    event_type_id = service.calcom_event_type_id
    if event_type_id is None or days < 1:
        return None
    if company is None:
        # Every caller has loaded the company already: an identity-map hit, no statement.
        company = await session.get(Company, service.company_id)
    if company is None or not company.calcom_api_key:
        return None
    access = _access.get()
    if access is None:
        log.debug("no Cal.com access in this context; local calendar only")
        return None
    if session.info.get(_DEGRADED):
        return None
    last_date = first_date + timedelta(days=days - 1)
    memo: dict[_Range, frozenset[datetime]] = session.info.setdefault(_MEMO, {})
    key = _Range(event_type_id, time_zone, first_date, last_date, reschedule_uid)
    if key in memo:
        return memo[key]
    starts = await _cached_or_fetched(access, company, key)
    if starts is None:
        session.info[_DEGRADED] = True
    else:
        memo[key] = starts
    return starts


class _Range(NamedTuple):
    """One question to Cal.com: an event type's local days, maybe for moving one booking."""

    event_type_id: int
    time_zone: str
    first_date: date
    last_date: date
    reschedule_uid: str | None


async def _cached_or_fetched(
    access: CalcomAccess, company: Company, key: _Range
) -> frozenset[datetime] | None:
    event_type_id, time_zone, first_date, last_date, reschedule_uid = key
    version: int | None = None
    if reschedule_uid is None:  # answers for one booking's move are not shared (module doc)
        version, cached = await slots_cache.read(
            access.redis, company.id, event_type_id, time_zone, first_date, last_date
        )
        if cached is not None:
            return cached
    reason: str
    try:
        async with asyncio.timeout(DEADLINE_S):
            fetched = await access.client(company).get_slots(
                event_type_id=event_type_id,
                start=first_date - _MARGIN,
                end=last_date + _MARGIN,
                time_zone=time_zone,
                timeout_s=TIMEOUT_S,
                booking_uid_to_reschedule=reschedule_uid,
            )
    except CircuitOpen:
        reason = "circuit_open"
    except TimeoutError:
        reason = "timeout"
    except CalcomTransient as exc:
        reason = "timeout" if isinstance(exc.__cause__, httpx.TimeoutException) else "unavailable"
    except CalcomRejected:
        reason = "rejected"
    except CalcomError:
        reason = "invalid_answer"
    except Exception:
        # A fault of ours on this path (a Redis hiccup past the breaker, a bug) must not cost
        # the caller a booking either; it is logged with its traceback.
        log.exception("Cal.com slot lookup failed unexpectedly")
        reason = "error"
    else:
        starts = frozenset(s.astimezone(UTC) for s in fetched)
        if version is not None:
            await slots_cache.write(
                access.redis,
                company.id,
                event_type_id,
                version,
                time_zone,
                first_date,
                last_date,
                starts,
            )
        return starts
    FALLBACKS.labels(reason).inc()
    log.warning(
        "Cal.com availability unavailable (%s): answering from the local calendar alone",
        reason,
        extra={"company_id": company.id, "event_type_id": event_type_id, "reason": reason},
    )
    return None
