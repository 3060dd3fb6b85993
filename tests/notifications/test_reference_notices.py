"""The booking reference reaches the customer in the confirmation (and the move notice), read
from the real SMTP test server and the fake SMS gateway (issue 13)."""

from __future__ import annotations

from typing import Any

from services.notifications.jobs import notify
from shared.db.engine import Database
from tests.conftest import Services
from tests.notifications.conftest import notify_rows
from tests.notifications.test_notify import book, customer_email, to
from tests.support.factories import create_salon
from tests.support.fake_messaging import FakeMessagingProvider
from tests.support.smtp_server import SmtpTestServer


async def test_the_confirmation_email_and_sms_carry_the_reference(
    services: Services,
    db: Database,
    ctx: dict[str, Any],
    smtp: SmtpTestServer,
    sms_gateway: FakeMessagingProvider,
) -> None:
    salon = await create_salon(db)
    email = customer_email()
    appointment = await book(services, salon, email)
    reference = appointment["reference"]
    [confirmation] = await notify_rows(db, appointment["id"])
    assert await notify(ctx, confirmation.id) == "sent"
    [message] = to(smtp.messages, email)
    assert f"\nBuchungsnummer: {reference}\n" in message.get_content()
    [sms] = [m for m in sms_gateway.messages if m.to == "+491701234567"]
    assert f"Buchungsnr.: {reference}." in sms.body


async def test_the_reschedule_notice_repeats_the_reference(
    services: Services,
    db: Database,
    ctx: dict[str, Any],
    smtp: SmtpTestServer,
) -> None:
    salon = await create_salon(db)
    email = customer_email()
    appointment = await book(services, salon, email, hour=10)
    moved = await services.clients["booking"].post(
        f"/v1/appointments/{appointment['id']}/reschedule",
        json={"start": appointment["start"].replace("T10:00", "T15:00")},
        headers=salon.headers,
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["reference"] == appointment["reference"]
    rows = await notify_rows(db, appointment["id"])
    assert [r.payload["event_type"] for r in rows] == ["booking_confirmed", "booking_rescheduled"]
    for row in rows:  # in order: a notice waits for the one before it
        assert await notify(ctx, row.id) == "sent"
    _confirmed, notice = to(smtp.messages, email)
    assert "verschoben" in (notice["Subject"] or "")
    assert f"\nBuchungsnummer: {appointment['reference']}\n" in notice.get_content()
