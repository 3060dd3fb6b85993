"""Reconciliation: pull what changed in Cal.com and apply it through the same mirror.

Cal.com never retries a webhook that failed, so a missed one is lost unless we look. Every
five minutes each active company with a Cal.com key is asked for the bookings updated since
its mark (`companies.calcom_reconciled_at`, minus a 10-minute overlap for clock skew and
bookings updated while the last run was reading; the first run looks back 24 h). Each one is
applied by `apply_booking`, which is idempotent, so seeing a booking twice is harmless. The
mark moves to the run's start only when the whole company succeeded, in the transaction that
applied its bookings; a company whose Cal.com is down keeps its mark and never holds up the
others.

This is also what repairs Cal.com deliveries refused while our database was unavailable (503
`database_unavailable`; Cal.com never sends them again, docs/adr/0019): no run can move a
mark during the outage, so the first run after it looks back past the outage's start and
applies those bookings, once (`apply_booking` is keyed by the booking uid).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta

import httpx
import sqlalchemy as sa
from arq.connections import ArqRedis
from redis.asyncio import Redis

from services.webhooks.calcom.mirror import apply_booking
from services.webhooks.calcom.snapshot import BookingSnapshot
from shared.config import Settings, get_settings
from shared.db.engine import Database
from shared.db.errors import database_unavailable
from shared.db.tenancy import SYSTEM
from shared.db.types import utcnow
from shared.integrations.calcom import CalcomClient, CalcomError, CircuitOpen, describe, slots_cache
from shared.jobs.context import JobContext
from shared.jobs.outbox import dispatch_staged
from shared.models import Company
from shared.web.problems import describe_database_error

log = logging.getLogger(__name__)

OVERLAP = timedelta(minutes=10)
FIRST_LOOK_BACK = timedelta(hours=24)


async def reconcile_company(
    db: Database,
    redis: Redis,
    http: httpx.AsyncClient,
    settings: Settings,
    company_id: str,
    now: datetime,
) -> int:
    """Apply one company's Cal.com changes; returns how many bookings changed something.

    Raises what Cal.com raised (CalcomError, CircuitOpen): the mark then stays where it was.
    """
    async with db.transaction(SYSTEM, write=False) as session:
        company = await session.get(Company, company_id)
    if company is None or not company.active or not company.calcom_api_key:
        return 0
    if not (company.calcom_base_url or settings.calcom_base_url):
        return 0  # no Cal.com to ask: the company keeps the local calendar only
    mark = company.calcom_reconciled_at
    since = mark - OVERLAP if mark is not None else now - FIRST_LOOK_BACK
    client = CalcomClient.for_company(company, settings=settings, http=http, redis=redis, db=db)
    # Read everything first: no database transaction stays open across HTTP calls.
    bookings = [b async for b in client.iter_bookings(after_updated_at=since)]
    changed: list[int | None] = []
    async with db.transaction(company_id) as session:
        company = await session.get(Company, company_id)
        assert company is not None
        for booking in bookings:
            snap = BookingSnapshot.from_calcom(booking)
            if snap is None:
                log.info("booking status not mirrored", extra={"status": booking.status})
                continue
            applied = await apply_booking(session, company, snap, now=now)
            if applied.changed:
                changed.append(snap.event_type_id or applied.event_type_id)
        await session.execute(
            sa.update(Company).where(Company.id == company_id).values(calcom_reconciled_at=now)
        )
    await dispatch_staged(session, redis if isinstance(redis, ArqRedis) else None)
    for event_type_id in set(changed):
        await slots_cache.invalidate(redis, company_id, event_type_id)
    if changed:
        log.info("reconciliation applied changes", extra={"company_id": company_id})
    return len(changed)


async def companies_due(db: Database) -> list[str]:
    """Active companies with Cal.com, the longest unreconciled first (never-run ones lead)."""
    async with db.transaction(SYSTEM, write=False) as session:
        rows = await session.execute(
            sa.select(Company.id)
            .where(Company.active.is_(True), Company.calcom_api_key.is_not(None))
            .order_by(Company.calcom_reconciled_at, Company.id)
        )
        return list(rows.scalars())


async def reconcile_calcom(ctx: JobContext) -> dict[str, int]:
    """The cron: every due company in turn, within the job's time budget."""
    settings = ctx.get("settings")
    settings = settings if isinstance(settings, Settings) else get_settings()
    try:
        due = await companies_due(ctx["db"])
    except Exception as exc:
        if database_unavailable(exc) is None:
            raise
        # Nothing moved: every mark stays, so the next run after the outage catches up.
        log.warning(
            "reconciliation skipped: database unavailable",
            extra={"error": describe_database_error(exc)},
        )
        return {"companies": 0, "changed": 0, "failed": 0, "deferred": 0}
    return await reconcile_all(
        ctx["db"],
        ctx["redis"],
        ctx["http"],
        settings,
        due,
        budget_s=max(1.0, settings.worker_job_timeout_s * 0.8),
    )


async def reconcile_all(
    db: Database,
    redis: Redis,
    http: httpx.AsyncClient,
    settings: Settings,
    company_ids: list[str],
    *,
    budget_s: float,
    now: datetime | None = None,
) -> dict[str, int]:
    """Each company on its own: one failing (Cal.com down, breaker open, a bad booking) is
    logged and keeps its mark; the others go on. Companies left when the budget runs out keep
    their older mark, so they lead next time."""
    started = now or utcnow()
    deadline = time.monotonic() + budget_s
    result = {"companies": 0, "changed": 0, "failed": 0, "deferred": 0}
    for index, company_id in enumerate(company_ids):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            result["deferred"] = len(company_ids) - index
            break
        try:
            async with asyncio.timeout(remaining):
                result["changed"] += await reconcile_company(
                    db, redis, http, settings, company_id, started
                )
            result["companies"] += 1
        except Exception as exc:  # one company's failure must never stop the others
            result["failed"] += 1
            # Cal.com's own words never reach a log line a tenant's operator might be shown;
            # nor does a failed statement's SQL.
            if isinstance(exc, CalcomError | CircuitOpen):
                error = describe(exc)
            elif database_unavailable(exc) is not None:
                error = f"database unavailable: {describe_database_error(exc)}"
            else:
                error = repr(exc)
            log.warning(
                "reconciliation failed for a company; its mark stays",
                extra={"company_id": company_id, "error": error},
            )
    return result
