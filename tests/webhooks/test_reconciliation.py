"""Reconciliation against the fake Cal.com: what no webhook told us is pulled and applied.

The fake validates each of our requests against Cal.com's OpenAPI document; every test ends
by checking it saw no violation.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from arq.connections import ArqRedis

from services.webhooks.calcom.reconciliation import reconcile_all, reconcile_company
from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.db.types import utcnow
from shared.models import Company
from shared.security.outbound import outbound_client
from tests.support.fake_calcom import FakeCalcom
from tests.webhooks.conftest import (
    ORGANIZER,
    appointments,
    by_uid,
    create_calcom_salon,
    deliver,
    outbox,
)

KEY = "cal_live_reconcile"
T = httpx.Timeout(10.0)


def created_webhook(booking: dict[str, Any]) -> dict[str, Any]:
    """The BOOKING_CREATED delivery Cal.com sends for an API booking (wrapped shape)."""
    attendee = booking["attendees"][0]
    return {
        "triggerEvent": "BOOKING_CREATED",
        "createdAt": booking["createdAt"],
        "payload": {
            "type": booking["eventType"]["slug"],
            "title": booking["title"],
            "startTime": booking["start"],
            "endTime": booking["end"],
            "organizer": {"email": booking["hosts"][0]["email"], "timeZone": "UTC"},
            "attendees": [
                {"name": attendee["name"], "email": attendee["email"], "timeZone": "UTC"}
            ],
            "eventTypeId": booking["eventTypeId"],
            "uid": booking["uid"],
            "bookingId": booking["id"],
            "metadata": booking["metadata"],
            "status": "ACCEPTED",
        },
    }


async def mark_of(db: Database, company_id: str) -> datetime | None:
    async with db.transaction(SYSTEM, write=False) as session:
        company = await session.get(Company, company_id)
        assert company is not None
        return company.calcom_reconciled_at


async def test_a_cancellation_whose_webhook_never_came_is_applied_by_the_next_run(
    db: Database, ctx: dict[str, Any], arq_pool: ArqRedis, settings: Settings
) -> None:
    async with FakeCalcom(api_keys=[KEY]) as fake, outbound_client(settings, timeout=T) as http:
        fake.add_event_type(41, 30, ORGANIZER)
        cs = await create_calcom_salon(db, event_type_id=41, base_url=fake.url, api_key=KEY)
        day = datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0)
        delivered = fake.book(41, day + timedelta(days=3), name="Lena Walk", email="lw@x.de")
        missed = fake.book(41, day + timedelta(days=4), name="Max Walk", email="mw@x.de")
        # Cal.com sent the first booking's BOOKING_CREATED, and nothing else got through.
        assert (await deliver(ctx, cs.company_id, created_webhook(delivered))).status == (
            "processed"
        )
        fake.cancel(delivered["uid"], "Cannot make it")

        first_run = utcnow()
        changed = await reconcile_company(db, arq_pool, http, settings, cs.company_id, first_run)
        assert changed == 2
        cancelled = await by_uid(db, cs.company_id, delivered["uid"])
        assert (cancelled.status, cancelled.cancellation_reason) == ("cancelled", "Cannot make it")
        mirror = await by_uid(db, cs.company_id, missed["uid"])
        assert (mirror.status, mirror.source, mirror.starts_at) == (
            "confirmed",
            "calcom",
            day + timedelta(days=4),
        )
        assert await mark_of(db, cs.company_id) == first_run
        notices = [
            ("notify", "booking_confirmed"),
            ("notify", "booking_cancelled"),
            ("notify", "booking_confirmed"),
        ]
        assert sorted(await outbox(db, cs.company_id)) == sorted(notices)

        # A second run sees the same bookings again (the overlap window) and changes nothing.
        second_run = first_run + timedelta(minutes=5)
        assert await reconcile_company(db, arq_pool, http, settings, cs.company_id, second_run) == 0
        assert sorted(await outbox(db, cs.company_id)) == sorted(notices)
        assert len(await appointments(db, cs.company_id)) == 2
        assert await mark_of(db, cs.company_id) == second_run
        # Both runs asked for bookings updated since the mark minus the overlap, nothing else.
        assert fake.calls["GET /v2/bookings"] == 2
        assert fake.violations == []


async def test_a_company_whose_calcom_is_down_keeps_its_mark_and_blocks_nobody(
    db: Database, arq_pool: ArqRedis, settings: Settings
) -> None:
    async with (
        FakeCalcom(api_keys=[KEY]) as up,
        FakeCalcom(api_keys=[KEY]) as down,
        outbound_client(settings, timeout=T) as http,
    ):
        up.add_event_type(42, 30, ORGANIZER)
        down.add_event_type(42, 30, ORGANIZER)
        broken = await create_calcom_salon(db, event_type_id=42, base_url=down.url, api_key=KEY)
        healthy = await create_calcom_salon(db, event_type_id=42, base_url=up.url, api_key=KEY)
        old_mark = datetime(2030, 1, 1, 6, 0, tzinfo=UTC)
        async with db.transaction(SYSTEM) as session:
            await session.execute(
                sa.update(Company)
                .where(Company.id == broken.company_id)
                .values(calcom_reconciled_at=old_mark)
            )
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
        booking = up.book(42, start)
        down.control(down=True)
        now = utcnow()
        result = await reconcile_all(
            db,
            arq_pool,
            http,
            settings,
            [broken.company_id, healthy.company_id],
            budget_s=20,
            now=now,
        )
        assert result == {"companies": 1, "changed": 1, "failed": 1, "deferred": 0}
        assert await mark_of(db, broken.company_id) == old_mark
        assert await mark_of(db, healthy.company_id) == now
        assert (await by_uid(db, healthy.company_id, booking["uid"])).status == "confirmed"
        assert down.refused == 1
        assert up.violations == [] and down.violations == []


async def test_a_company_without_calcom_key_is_skipped(
    db: Database, arq_pool: ArqRedis, settings: Settings
) -> None:
    cs = await create_calcom_salon(db, api_key=None)
    async with outbound_client(settings, timeout=T) as http:
        assert await reconcile_company(db, arq_pool, http, settings, cs.company_id, utcnow()) == 0
    assert await mark_of(db, cs.company_id) is None
