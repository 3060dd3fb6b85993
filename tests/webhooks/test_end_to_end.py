"""Ingestion and processing together: what Cal.com sends through the real endpoint ends as
exactly one effect, however often it is delivered (guarantee 2), and Cal.com's own payloads
from `contracts/calcom/` are accepted and applied."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import sqlalchemy as sa

from services.webhooks.jobs import process_webhook_event
from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.models import WebhookEvent
from tests.webhooks import calcom_headers, webhooks_client
from tests.webhooks.conftest import (
    ORGANIZER,
    appointments,
    contract,
    create_calcom_salon,
    get_event,
    new_uid,
    with_uid,
)

SECRET = "whsec"  # create_calcom_salon's webhook secret


def signed(body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    return raw, calcom_headers(raw, SECRET)


def created(uid: str, start: str = "2030-05-14T09:00:00Z", end: str = "2030-05-14T09:30:00Z"):
    body = with_uid(contract("webhook-BOOKING_CREATED.example.json"), uid)
    body["payload"].update(startTime=start, endTime=end, eventTypeId=7)
    body["payload"]["organizer"]["email"] = ORGANIZER
    return body


async def test_one_delivery_ten_times_concurrently_and_five_after_has_one_effect(
    db: Database, settings: Settings, ctx: dict[str, Any]
) -> None:
    salon = await create_calcom_salon(db)
    raw, headers = signed(created(new_uid()))
    path = f"/v1/webhooks/calcom/{salon.company_id}"
    async with webhooks_client(settings) as client:
        first = await asyncio.gather(
            *(client.post(path, content=raw, headers=headers) for _ in range(10))
        )
        event_id = next(r.json()["event_id"] for r in first if r.status_code == 202)
        assert sorted(r.status_code for r in first) == [200] * 9 + [202]
        # The job delivered twice (ARQ is at-least-once), then five late repeats of the webhook.
        assert await process_webhook_event(ctx, event_id) == "processed"
        assert await process_webhook_event(ctx, event_id) == "skipped"
        later = [await client.post(path, content=raw, headers=headers) for _ in range(5)]
    assert [r.status_code for r in later] == [200] * 5
    assert {r.json()["status"] for r in later} == {"already_processed"}
    mirrored = await appointments(db, salon.company_id)
    assert len(mirrored) == 1
    assert mirrored[0].source == "calcom"
    assert mirrored[0].staff_id == salon.staff_id
    assert mirrored[0].status == "confirmed"
    async with db.transaction(SYSTEM, write=False) as session:
        events = await session.scalar(
            sa.select(sa.func.count())
            .select_from(WebhookEvent)
            .where(WebhookEvent.company_id == salon.company_id)
        )
    assert events == 1
    assert (await get_event(db, event_id)).attempts == 1


async def test_calcom_payloads_through_the_endpoint_are_applied(
    db: Database, settings: Settings, ctx: dict[str, Any]
) -> None:
    """Created, then cancelled, then a repeat of the creation: one cancelled mirror."""
    salon = await create_calcom_salon(db)
    uid = new_uid()
    cancelled = with_uid(contract("webhook-BOOKING_CANCELLED.example.json"), uid)
    cancelled["payload"].update(
        startTime="2030-05-15T10:00:00Z", endTime="2030-05-15T10:30:00Z", eventTypeId=7
    )
    cancelled["payload"]["organizer"]["email"] = ORGANIZER
    bodies = [
        created(uid, "2030-05-15T10:00:00Z", "2030-05-15T10:30:00Z"),
        cancelled,
    ]
    path = f"/v1/webhooks/calcom/{salon.company_id}"
    async with webhooks_client(settings) as client:
        for body in bodies:
            raw, headers = signed(body)
            answer = await client.post(path, content=raw, headers=headers)
            assert answer.status_code == 202, answer.text
            assert await process_webhook_event(ctx, answer.json()["event_id"]) == "processed"
        raw, headers = signed(bodies[0])
        repeat = await client.post(path, content=raw, headers=headers)
    assert repeat.status_code == 200
    assert repeat.json()["status"] == "already_processed"
    mirrored = await appointments(db, salon.company_id)
    assert [(a.calcom_booking_uid, a.status) for a in mirrored] == [(uid, "cancelled")]
