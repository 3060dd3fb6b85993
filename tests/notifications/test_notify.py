"""The notify job end to end: a booking's confirmation by real SMTP and the fake SMS gateway,
exactly once (twice processed, two workers racing), in order, retries and permanent failures,
and what `GET /v1/notifications/deliveries` shows (both backends)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from arq import Retry

from services.notifications.jobs import NOTIFY_MAX_TRIES, notify
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.models import Branch, NotificationDelivery, OutboxEvent
from tests.conftest import Services
from tests.notifications.conftest import notify_rows
from tests.support.factories import Salon, create_salon, next_weekday
from tests.support.fake_messaging import FakeMessagingProvider
from tests.support.smtp_server import SmtpTestServer

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS_DE = ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag")
MONTHS_DE = (
    "Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September",
    "Oktober", "November", "Dezember",
)  # fmt: skip


def german_long(moment: datetime) -> str:
    local = moment.astimezone(BERLIN)
    return (
        f"{WEEKDAYS_DE[local.weekday()]}, {local.day}. {MONTHS_DE[local.month - 1]} "
        f"{local.year} um {local:%H:%M} Uhr"
    )


@pytest.fixture
async def salon(db: Database) -> Salon:
    salon = await create_salon(db)
    async with db.transaction(salon.tenant.company_id) as session:
        await session.execute(
            sa.update(Branch)
            .where(Branch.id == salon.branch_id)
            .values(address_line="Hauptstraße 1", postal_code="10115", email="mitte@salon-mitte.de")
        )
    return salon


def customer_email() -> str:
    return f"kunde-{uuid.uuid4().hex[:8]}@example.com"


async def book(
    services: Services, salon: Salon, email: str, hour: int = 10, weekday: int = 1
) -> dict[str, Any]:
    day = next_weekday(weekday, at_least_days=4)
    start = datetime(day.year, day.month, day.day, hour, tzinfo=BERLIN)
    response = await services.clients["booking"].post(
        "/v1/appointments",
        json={
            "service_id": salon.service_id,
            "staff_id": salon.staff_ids[0],
            "start": start.isoformat(),
            "customer": {"name": "Erika Musterfrau", "phone": "+491701234567", "email": email},
        },
        headers=salon.headers,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def to(messages: list[EmailMessage], address: str) -> list[EmailMessage]:
    return [message for message in messages if message["To"] == address]


async def deliveries(db: Database, appointment_id: str) -> list[NotificationDelivery]:
    async with db.transaction(SYSTEM, write=False) as session:
        rows = await session.scalars(
            sa.select(NotificationDelivery)
            .where(NotificationDelivery.appointment_id == appointment_id)
            .order_by(NotificationDelivery.created_at, NotificationDelivery.channel)
        )
        return list(rows)


async def run_to_completion(ctx: dict[str, Any], outbox_id: str) -> str:
    """Run the job as ARQ would, try after try (without waiting out the deferrals)."""
    for job_try in range(1, NOTIFY_MAX_TRIES + 1):
        try:
            return await notify({**ctx, "job_try": job_try}, outbox_id)
        except Retry:
            continue
    raise AssertionError("the job never finished")


async def test_a_booking_sends_one_german_confirmation_email_and_one_sms(
    services: Services,
    salon: Salon,
    db: Database,
    ctx: dict[str, Any],
    smtp: SmtpTestServer,
    sms_gateway: FakeMessagingProvider,
) -> None:
    email = customer_email()
    appointment = await book(services, salon, email)
    [confirmation] = await notify_rows(db, appointment["id"])
    assert confirmation.payload["event_type"] == "booking_confirmed"

    assert await notify(ctx, confirmation.id) == "sent"

    [message] = to(smtp.messages, email)
    body = message.get_content()
    start = datetime.fromisoformat(appointment["start"])
    assert german_long(start) in body
    assert "Herrenhaarschnitt" in body
    assert "Mitte" in body
    assert "Hauptstraße 1, 10115 Berlin" in body
    assert "Erika Musterfrau" in body
    assert (message["Subject"] and "Herrenhaarschnitt" in message["Subject"]) or "bestätigt" in (
        message["Subject"] or ""
    )
    [sms] = [m for m in sms_gateway.messages if m.to == "+491701234567"]
    assert sms.channel == "sms"
    assert f"{start.astimezone(BERLIN):%H:%M}" in sms.body

    rows = await deliveries(db, appointment["id"])
    assert [(r.channel, r.status, r.attempts, r.recipient_kind, r.language) for r in rows] == [
        ("email", "sent", 1, "customer", "de"),
        ("sms", "sent", 1, "customer", "de"),
    ]
    listed = await services.clients["notifications"].get(
        "/v1/notifications/deliveries",
        params={"appointment_id": appointment["id"]},
        headers=salon.headers,
    )
    assert listed.status_code == 200
    shown = {d["channel"]: d for d in listed.json()["items"]}
    assert shown["email"]["recipient"] == email[0] + "***@example.com"
    assert shown["sms"]["recipient"] == "+49170*****67"
    assert shown["sms"]["provider_message_id"] == sms.id
    assert email not in listed.text
    other = await create_salon(db)
    hidden = await services.clients["notifications"].get(
        "/v1/notifications/deliveries",
        params={"appointment_id": appointment["id"]},
        headers=other.headers,
    )
    assert hidden.json()["items"] == []
    async with db.transaction(SYSTEM, write=False) as session:
        row = await session.get(OutboxEvent, confirmation.id)
        assert row is not None and row.status == "done"


async def test_the_same_job_processed_twice_sends_once(
    services: Services, salon: Salon, db: Database, ctx: dict[str, Any], smtp: SmtpTestServer
) -> None:
    email = customer_email()
    appointment = await book(services, salon, email)
    [event] = await notify_rows(db, appointment["id"])
    assert await notify(ctx, event.id) == "sent"
    assert await notify(ctx, event.id) == "skipped"
    # Even when the outbox row was not marked (a crash after sending), no second message.
    async with db.transaction(SYSTEM) as session:
        await session.execute(
            sa.update(OutboxEvent).where(OutboxEvent.id == event.id).values(status="pending")
        )
    assert await notify(ctx, event.id) == "done"
    assert len(to(smtp.messages, email)) == 1


async def test_two_workers_racing_send_one_message(
    services: Services,
    salon: Salon,
    db: Database,
    ctx: dict[str, Any],
    smtp: SmtpTestServer,
    sms_gateway: FakeMessagingProvider,
) -> None:
    # One customer (one phone): a booking never changes their stored e-mail (issue 13).
    email = customer_email()
    for round_ in range(3):
        appointment = await book(services, salon, email, hour=10 + 2 * round_)
        [event] = await notify_rows(db, appointment["id"])
        results = await asyncio.gather(
            run_to_completion(ctx, event.id), run_to_completion(dict(ctx), event.id)
        )
        # Each worker may have sent one channel and waited for the other, or found the job
        # finished ("skipped"): what counts is what arrived, below.
        outcomes = {part for result in results for part in result.split(",")}
        assert outcomes <= {"done", "sent", "skipped"}, results
        received = to(smtp.messages, email)
        assert len(received) == round_ + 1
        message = received[-1]
        assert smtp.count_message_id(message["Message-ID"]) == 1
        rows = await deliveries(db, appointment["id"])
        assert sorted((r.channel, r.status) for r in rows) == [("email", "sent"), ("sms", "sent")]
    assert len(sms_gateway.messages) == 3


async def test_confirm_then_cancel_arrive_in_order_when_the_first_job_is_delayed(
    services: Services, salon: Salon, db: Database, ctx: dict[str, Any], smtp: SmtpTestServer
) -> None:
    email = customer_email()
    appointment = await book(services, salon, email)
    cancelled = await services.clients["booking"].post(
        f"/v1/appointments/{appointment['id']}/cancel", json={}, headers=salon.headers
    )
    assert cancelled.status_code == 200, cancelled.text
    confirm, cancel = await notify_rows(db, appointment["id"])
    assert (confirm.payload["event_type"], cancel.payload["event_type"]) == (
        "booking_confirmed",
        "booking_cancelled",
    )
    # The cancellation's job runs first: it waits for the confirmation.
    with pytest.raises(Retry):
        await notify(ctx, cancel.id)
    assert to(smtp.messages, email) == []
    assert await notify(ctx, confirm.id) == "sent"
    assert await notify({**ctx, "job_try": 2}, cancel.id) == "sent"
    first, second = to(smtp.messages, email)
    start = german_long(datetime.fromisoformat(appointment["start"]))
    assert start in first.get_content() and start in second.get_content()
    assert "storniert" in (second["Subject"] or "") + second.get_content()
    assert "storniert" not in (first["Subject"] or "") + first.get_content()


async def test_a_transient_smtp_failure_is_retried_and_then_sent(
    services: Services, salon: Salon, db: Database, ctx: dict[str, Any], smtp: SmtpTestServer
) -> None:
    email = customer_email()
    appointment = await book(services, salon, email)
    [event] = await notify_rows(db, appointment["id"])
    smtp.defer(1)
    with pytest.raises(Retry):
        await notify(ctx, event.id)
    by_channel = {r.channel: r for r in await deliveries(db, appointment["id"])}
    assert (by_channel["email"].status, by_channel["email"].attempts) == ("retrying", 1)
    assert by_channel["email"].last_error
    assert by_channel["sms"].status == "sent"
    assert await notify({**ctx, "job_try": 2}, event.id) == "done,sent"
    by_channel = {r.channel: r for r in await deliveries(db, appointment["id"])}
    assert (by_channel["email"].status, by_channel["email"].attempts) == ("sent", 2)
    assert len(to(smtp.messages, email)) == 1


async def test_a_permanent_failure_is_recorded_and_listed(
    services: Services, salon: Salon, db: Database, ctx: dict[str, Any], smtp: SmtpTestServer
) -> None:
    email = customer_email()
    appointment = await book(services, salon, email)
    [event] = await notify_rows(db, appointment["id"])
    smtp.refuse(email)
    assert await notify(ctx, event.id) == "failed,sent"
    failed = await services.clients["notifications"].get(
        "/v1/notifications/deliveries",
        params={"appointment_id": appointment["id"], "status": "failed"},
        headers=salon.headers,
    )
    [row] = failed.json()["items"]
    assert row["channel"] == "email"
    assert row["attempts"] == 1
    assert "550" in row["error"]
    assert to(smtp.messages, email) == []


async def test_a_branch_that_disabled_sms_gets_email_only(
    services: Services,
    salon: Salon,
    db: Database,
    ctx: dict[str, Any],
    sms_gateway: FakeMessagingProvider,
    smtp: SmtpTestServer,
) -> None:
    response = await services.clients["notifications"].put(
        f"/v1/notification-configs/branch/{salon.branch_id}/booking_confirmed/sms",
        json={"enabled": False},
        headers=salon.headers,
    )
    assert response.status_code == 201
    email = customer_email()
    appointment = await book(services, salon, email)
    [event] = await notify_rows(db, appointment["id"])
    assert await notify(ctx, event.id) == "sent"
    assert len(to(smtp.messages, email)) == 1
    assert sms_gateway.messages == []
    assert [r.channel for r in await deliveries(db, appointment["id"])] == ["email"]


async def test_a_customer_without_email_is_recorded_as_skipped(
    services: Services, salon: Salon, db: Database, ctx: dict[str, Any]
) -> None:
    day = next_weekday(2, at_least_days=4)
    response = await services.clients["booking"].post(
        "/v1/appointments",
        json={
            "service_id": salon.service_id,
            "start": datetime(day.year, day.month, day.day, 11, tzinfo=BERLIN).isoformat(),
            "customer": {"name": "Ohne Mail", "phone": "+491705550000"},
        },
        headers=salon.headers,
    )
    assert response.status_code == 201
    appointment = response.json()
    [event] = await notify_rows(db, appointment["id"])
    assert await notify(ctx, event.id) == "sent,skipped"
    rows = {r.channel: r for r in await deliveries(db, appointment["id"])}
    assert rows["email"].status == "skipped"
    assert rows["email"].recipient_masked == "(customer: no email address)"
    assert rows["sms"].status == "sent"


async def test_a_booking_is_not_slowed_or_broken_by_a_dead_channel(
    services: Services,
    salon: Salon,
    db: Database,
    ctx: dict[str, Any],
    sms_gateway: FakeMessagingProvider,
) -> None:
    # Delivery is the worker's business: the booking answers 201 whatever the channels do.
    sms_gateway.down()
    try:
        appointment = await book(services, salon, customer_email())
        [event] = await notify_rows(db, appointment["id"])
        with pytest.raises(Retry):
            await notify(ctx, event.id)
        rows = {r.channel: r for r in await deliveries(db, appointment["id"])}
        assert (rows["sms"].status, rows["email"].status) == ("retrying", "sent")
        # The last try records the failure instead of retrying for ever.
        assert await notify({**ctx, "job_try": NOTIFY_MAX_TRIES}, event.id) == "done,failed"
        rows = {r.channel: r for r in await deliveries(db, appointment["id"])}
        assert rows["sms"].status == "failed"
    finally:
        sms_gateway.up()


async def test_unknown_delivery_filters_are_refused(services: Services, salon: Salon) -> None:
    client = services.clients["notifications"]
    for params in ({"status": "lost"}, {"channel": "fax"}, {"limit": "0"}):
        response = await client.get(
            "/v1/notifications/deliveries", params=params, headers=salon.headers
        )
        assert response.status_code == 422, params
    assert (await client.get("/v1/notifications/deliveries")).status_code == 401


async def test_a_callback_request_tells_the_branch(
    services: Services, salon: Salon, db: Database, ctx: dict[str, Any], smtp: SmtpTestServer
) -> None:
    response = await services.clients["booking"].post(
        "/v1/callbacks",
        json={
            "phone_number": "0170 7654321",
            "reason": "Frage zur Färbung",
            "customer_name": "Jana Rückruf",
            "branch_id": salon.branch_id,
        },
        headers=salon.headers,
    )
    assert response.status_code == 201, response.text
    callback = response.json()
    [event] = await notify_rows(db, callback["id"])
    assert event.payload["event_type"] == "callback_requested", event.payload
    assert event.status == "pending", (event.status, event.last_error)
    assert await notify(ctx, event.id) == "sent"
    [message] = to(smtp.messages, "mitte@salon-mitte.de")
    body = message.get_content()
    assert "Jana Rückruf" in body
    assert "+491707654321" in body
    assert "Frage zur Färbung" in body
    listed = await services.clients["notifications"].get(
        "/v1/notifications/deliveries",
        params={"callback_id": callback["id"]},
        headers=salon.headers,
    )
    [row] = listed.json()["items"]
    assert (row["recipient_kind"], row["status"], row["recipient"]) == (
        "branch",
        "sent",
        "m***@salon-mitte.de",
    )
