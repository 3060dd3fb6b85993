"""The sync job against a tenant URL the outbound guard refuses, and against a Cal.com whose
error body carries secrets: the appointment fails with a short reason of ours, never the
remote text, in `sync_error`, `last_error`, the call log and every answer a tenant can read."""

from __future__ import annotations

import httpx
from arq.connections import ArqRedis
from sqlalchemy import select, update

from services.booking.jobs import sync_appointment
from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.models import ApiCallLog, CallbackRequest, Company
from shared.security.outbound import outbound_client
from tests.conftest import Services
from tests.support.canned_http import CannedHttp
from tests.support.factories import next_weekday
from tests.support.fake_calcom import FakeCalcom
from tests.sync.conftest import appointment as stored_appointment
from tests.sync.conftest import (
    at,
    book,
    cal_salon,
    job_ctx,
    outbox_rows,
    run_sync,
    sync_rows,
)

SECRET = "sk_live_4d3c2b1a SECRET-TOKEN db.internal:5432 password=hunter2"


async def _point_at(db: Database, company_id: str, base_url: str) -> None:
    async with db.transaction(SYSTEM) as session:
        await session.execute(
            update(Company).where(Company.id == company_id).values(calcom_base_url=base_url)
        )


async def test_a_host_resolving_to_loopback_fails_the_sync_with_a_sanitized_reason(
    services: Services, db: Database, settings: Settings, pool: ArqRedis, fake: FakeCalcom
) -> None:
    cal = await cal_salon(db, fake)
    appointment_id = await book(services, cal, at(next_weekday(2), 10))
    # `localhost` is on the allow-list (a DNS name, saved without a lookup) but resolves to
    # 127.0.0.1 / ::1: the guard refuses the connection, whatever the list says.
    strict = settings.model_copy(
        update={"allow_private_outbound_urls": False, "outbound_allowed_hosts": "localhost"}
    )
    await _point_at(db, cal.company_id, f"https://localhost:{fake.url.rsplit(':', 1)[1]}")
    [row] = await sync_rows(db, cal.company_id)
    calls_before = dict(fake.calls)  # the slot lookup of the booking itself

    async with outbound_client(strict, timeout=httpx.Timeout(5.0)) as http:
        ctx = job_ctx(db, strict, pool, http=http)
        assert await sync_appointment(ctx, row.id) == "failed"

    stored = await stored_appointment(db, appointment_id)
    reason = "CalcomAddressRefused: Cal.com not called: address not allowed (loopback)"
    assert (stored.sync_status, stored.sync_error) == ("failed", reason)
    [failed] = await sync_rows(db, cal.company_id)
    assert (failed.status, failed.last_error) == ("failed", reason)
    assert dict(fake.calls) == calls_before  # nothing reached the listener behind localhost


async def test_a_cal_com_error_body_never_reaches_sync_error_or_any_answer(
    services: Services, db: Database, settings: Settings, pool: ArqRedis, fake: FakeCalcom
) -> None:
    cal = await cal_salon(db, fake)
    appointment_id = await book(services, cal, at(next_weekday(3), 11))
    [row] = await sync_rows(db, cal.company_id)
    body = {"status": "error", "error": {"message": SECRET, "details": {"hint": SECRET}}}
    async with CannedHttp(400, body) as remote:
        await _point_at(db, cal.company_id, remote.url)
        assert await run_sync(db, settings, pool, row.id) == "failed"
    assert len(remote.heads) == 1  # Cal.com was asked once and refused

    stored = await stored_appointment(db, appointment_id)
    assert stored.sync_error == (
        "SyncRefused: Cal.com refused the booking: Cal.com answered 400 (Bad Request)"
    )
    [failed] = await sync_rows(db, cal.company_id)
    assert failed.last_error == stored.sync_error
    notices = [r.payload for r in await outbox_rows(db, cal.company_id, "notify")]
    async with db.transaction(SYSTEM, write=False) as session:
        logged = list(
            await session.scalars(
                select(ApiCallLog.error_message).where(
                    ApiCallLog.company_id == cal.company_id, ApiCallLog.error_message.is_not(None)
                )
            )
        )
        reasons = list(
            await session.scalars(
                select(CallbackRequest.reason).where(CallbackRequest.company_id == cal.company_id)
            )
        )
    assert logged == ["Cal.com answered 400 (Bad Request)"]
    assert len(reasons) == 1 and "Cal.com answered 400 (Bad Request)" in reasons[0]
    assert any(n.get("event_type") == "booking_sync_failed" for n in notices)

    client = services.clients["booking"]
    answers = [
        await client.get(f"/v1/appointments/{appointment_id}", headers=cal.headers),
        await client.get("/v1/ops/failed-bookings", params={"hours": 48}, headers=cal.headers),
        await client.get("/v1/ops/overview", headers=cal.headers),
        await client.get("/v1/callbacks", headers=cal.headers),
        await client.get("/v1/admin/integrations/calcom", headers=cal.headers),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
    failures = answers[1].json()["items"]
    assert [f["error"] for f in failures if f["appointment_id"] == appointment_id] == [
        stored.sync_error
    ]
    for fragment in ("sk_live", "SECRET-TOKEN", "hunter2", "db.internal"):
        assert all(fragment not in a.text for a in answers), fragment
        assert all(fragment not in str(n) for n in notices), fragment
        assert all(fragment not in (text or "") for text in [*logged, *reasons]), fragment
