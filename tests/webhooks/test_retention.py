"""DSGVO retention (issue 13, item 9; docs/adr/0015): raw webhook payloads, call transcripts
and API call logs older than RETENTION_DAYS are deleted or redacted, for every company, while
younger rows and the call rows themselves (statistics) stay."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa

from services.webhooks.retention import apply_retention, enforce_retention
from services.webhooks.worker import WorkerSettings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.db.types import utcnow
from shared.models import ApiCallLog, Call, WebhookEvent
from tests.support.factories import create_tenant


async def _seed(db: Database, company_id: str, created_at: datetime, tag: str) -> dict[str, str]:
    ids = {
        "event": str(uuid.uuid4()),
        "call": str(uuid.uuid4()),
        "log": str(uuid.uuid4()),
    }
    async with db.transaction(company_id) as session:
        session.add_all(
            [
                WebhookEvent(
                    id=ids["event"],
                    company_id=company_id,
                    source="calcom",
                    event_id=f"calcom:{tag}:{uuid.uuid4().hex}",
                    event_type="BOOKING_CREATED",
                    status="processed",
                    payload={"attendee": f"Person {tag}", "phone": "+4917600000000"},
                    created_at=created_at,
                ),
                Call(
                    id=ids["call"],
                    retell_call_id=f"call_{tag}_{uuid.uuid4().hex[:10]}",
                    from_number="+4917600000000",
                    status="ended",
                    transcript=f"User: Ich bin Person {tag}",
                    analysis={"call_summary": f"Person {tag} bucht"},
                    created_at=created_at,
                ),
                ApiCallLog(
                    id=ids["log"],
                    company_id=company_id,
                    service="calcom",
                    method="GET",
                    endpoint=f"/v2/bookings?attendee={tag}",
                    response_status=200,
                    response_body={"data": [tag]},
                    created_at=created_at,
                ),
            ]
        )
    return ids


async def _state(db: Database, ids: dict[str, str]) -> tuple[bool, tuple[object, object], bool]:
    async with db.transaction(SYSTEM, write=False) as session:
        event = await session.scalar(
            sa.select(sa.func.count())
            .select_from(WebhookEvent)
            .where(WebhookEvent.id == ids["event"])
        )
        call = (
            await session.execute(
                sa.select(Call.transcript, Call.analysis).where(Call.id == ids["call"])
            )
        ).one()
        log = await session.scalar(
            sa.select(sa.func.count()).select_from(ApiCallLog).where(ApiCallLog.id == ids["log"])
        )
    return event == 1, (call[0], call[1]), log == 1


async def test_rows_past_the_retention_go_for_every_company_and_younger_ones_stay(
    db: Database,
) -> None:
    now = utcnow()
    a = await create_tenant(db)
    b = await create_tenant(db)
    old_a = await _seed(db, a.company_id, now - timedelta(days=91), "old-a")
    old_b = await _seed(db, b.company_id, now - timedelta(days=400), "old-b")
    young = await _seed(db, a.company_id, now - timedelta(days=89), "young")
    edge = await _seed(db, b.company_id, now - timedelta(days=90), "edge")

    result = await apply_retention(db, days=90, now=now)

    assert result.webhook_events_deleted >= 2
    assert result.transcripts_cleared >= 2
    assert result.api_call_logs_deleted >= 2
    for ids in (old_a, old_b):
        assert await _state(db, ids) == (False, (None, None), False)
    # The call row itself stays countable.
    async with db.transaction(SYSTEM, write=False) as session:
        calls = await session.scalar(
            sa.select(sa.func.count())
            .select_from(Call)
            .where(Call.id.in_([old_a["call"], old_b["call"]]))
        )
    assert calls == 2
    assert await _state(db, young) == (
        True,
        ("User: Ich bin Person young", {"call_summary": "Person young bucht"}),
        True,
    )
    # Exactly at the cutoff is kept.
    assert await _state(db, edge) == (
        True,
        ("User: Ich bin Person edge", {"call_summary": "Person edge bucht"}),
        True,
    )

    again = await apply_retention(db, days=90, now=now)
    assert await _state(db, young) == (
        True,
        ("User: Ich bin Person young", {"call_summary": "Person young bucht"}),
        True,
    )
    assert (again.webhook_events_deleted, again.api_call_logs_deleted) == (0, 0)


async def test_the_retention_days_setting_drives_the_cron(db: Database) -> None:
    now = utcnow()
    tenant = await create_tenant(db)
    kept = await _seed(db, tenant.company_id, now - timedelta(days=20), "kept")
    gone = await _seed(db, tenant.company_id, now - timedelta(days=40), "gone")
    settings = db.settings.model_copy(update={"retention_days": 30})

    counts = await enforce_retention({"db": db, "settings": settings})

    assert counts["webhook_events_deleted"] >= 1
    assert await _state(db, gone) == (False, (None, None), False)
    assert (await _state(db, kept))[0] is True


def test_the_webhooks_worker_runs_retention_nightly() -> None:
    jobs = [job for job in WorkerSettings.cron_jobs if job.name.endswith("enforce_retention")]
    assert len(jobs) == 1
    assert (jobs[0].hour, jobs[0].minute, jobs[0].unique) == ({3}, {17}, True)
