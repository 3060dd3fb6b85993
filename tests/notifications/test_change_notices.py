"""The two notices a change of an appointment can call for besides its own: a late
cancellation's fee (`cancellation_fee_charged`, staged with the cancellation) and a change
refused because the customer's quota is used up (`modification_quota_exceeded`, staged after
the refusal rolled back, once per appointment state and kind, however often it is asked)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from services.booking.appointments.refusal_notices import QuotaNotice, notice_in, stage_notice
from services.notifications.jobs import notify
from shared.db.engine import Database
from shared.errors import AgentAnswer, PolicyViolation
from shared.models import Appointment, OutboxEvent
from tests.booking.agent_support import CALLER, call_function, enable_retell
from tests.booking.test_changes import put_policy
from tests.conftest import Services
from tests.notifications.conftest import notify_rows
from tests.notifications.test_notify import customer_email, to
from tests.support.factories import Salon, create_salon, next_weekday
from tests.support.smtp_server import SmtpTestServer

BERLIN = ZoneInfo("Europe/Berlin")


async def book(
    services: Services, salon: Salon, email: str, start: datetime, staff: int = 0
) -> str:
    response = await services.clients["booking"].post(
        "/v1/appointments",
        json={
            "service_id": salon.service_id,
            "staff_id": salon.staff_ids[staff],
            "start": start.isoformat(),
            "customer": {"name": "Erika Musterfrau", "phone": CALLER, "email": email},
        },
        headers=salon.headers,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def local(days: int, hour: int, weekday: int = 2) -> datetime:
    day = next_weekday(weekday, at_least_days=days)
    return datetime(day.year, day.month, day.day, hour, tzinfo=BERLIN)


def events(rows: list[OutboxEvent]) -> list[str]:
    return [row.payload["event_type"] for row in rows]


async def post(services: Services, salon: Salon, path: str, body: Any) -> httpx.Response:
    return await services.clients["booking"].post(path, json=body, headers=salon.headers)


# --- the fee ------------------------------------------------------------------------------


async def test_a_late_cancellation_tells_the_customer_the_fee_in_a_notice_of_its_own(
    services: Services, db: Database, ctx: dict[str, Any], smtp: SmtpTestServer
) -> None:
    salon = await create_salon(db)
    await put_policy(
        services,
        salon,
        "cancellation",
        {
            "hours_before": 24 * 30,
            "allow_late": True,
            "fee_tiers": [{"min_hours_before": 0, "fee_percent": 50}],
        },
    )
    email = customer_email()
    appointment = await book(services, salon, email, local(4, 10))
    body = {"accept_fee": True}  # REST: a fee must be accepted (409 fee_required otherwise)
    cancelled = await post(services, salon, f"/v1/appointments/{appointment}/cancel", body)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["fee"] == "14.00"  # 50 % of 28.00

    rows = await notify_rows(db, appointment)
    assert events(rows) == ["booking_confirmed", "booking_cancelled", "cancellation_fee_charged"]
    fee_row = rows[2]
    assert (fee_row.payload["fee"], fee_row.payload["currency"]) == ("14.00", "EUR")
    for row in rows:
        assert await notify({**ctx, "job_try": 1}, row.id) == "sent"
    messages = to(smtp.messages, email)
    assert len(messages) == 3
    fee_mail = messages[2]
    assert fee_mail["Subject"].startswith("Stornogebühr für Ihren Termin am ")
    assert "eine Gebühr von 14,00 €" in fee_mail.get_content()
    assert "Kostenfrei absagen konnten Sie bis " in fee_mail.get_content()  # the deadline missed


async def test_a_free_cancellation_sends_no_fee_notice(services: Services, db: Database) -> None:
    salon = await create_salon(db)
    appointment = await book(services, salon, customer_email(), local(4, 11))
    cancelled = await post(services, salon, f"/v1/appointments/{appointment}/cancel", {})
    assert cancelled.status_code == 200 and cancelled.json()["fee"] == "0.00", cancelled.text
    assert events(await notify_rows(db, appointment)) == ["booking_confirmed", "booking_cancelled"]


# --- the quota ----------------------------------------------------------------------------


async def _quota_used_up(services: Services, db: Database) -> tuple[Salon, str, str, str]:
    """A customer allowed one cancellation and one reschedule per 30 days, both used: returns
    (salon, email, an appointment still booked, its start)."""
    salon = await create_salon(db)
    await enable_retell(db, salon)
    await put_policy(services, salon, "cancellation", {"max_per_window": 1, "window_days": 30})
    await put_policy(services, salon, "reschedule", {"max_per_window": 1, "window_days": 30})
    email = customer_email()
    first = await book(services, salon, email, local(5, 9))
    second = await book(services, salon, email, local(5, 11))
    kept_start = local(5, 14)
    kept = await book(services, salon, email, kept_start)
    moved = await post(
        services,
        salon,
        f"/v1/appointments/{second}/reschedule",
        {"start": local(5, 16).isoformat()},
    )
    assert moved.status_code == 200, moved.text
    assert (await post(services, salon, f"/v1/appointments/{first}/cancel", {})).status_code == 200
    return salon, email, kept, kept_start.isoformat()


async def _version(db: Database, salon: Salon, appointment_id: str) -> tuple[str, int]:
    async with db.transaction(salon.tenant.company_id, write=False) as session:
        row = await session.get(Appointment, appointment_id)
        assert row is not None
        return row.status, row.version


async def test_a_refused_change_tells_the_customer_once_however_often_it_is_asked(
    services: Services, db: Database, ctx: dict[str, Any], smtp: SmtpTestServer
) -> None:
    salon, email, kept, kept_start = await _quota_used_up(services, db)
    before = await _version(db, salon, kept)
    cancel_path = f"/v1/appointments/{kept}/cancel"
    for _ in range(2):  # over REST, twice
        refused = await post(services, salon, cancel_path, {})
        assert refused.status_code == 409, refused.text
        assert (refused.json()["reason"], refused.json()["quota"]["limit"]) == (
            "quota_exceeded",
            1,
        )
    for _ in range(2):  # and by the agent, twice, in separate calls
        answer = await call_function(
            services.clients["booking"], salon, "cancel_appointment", {"appointment_id": kept}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "not_allowed", answer.json()
        assert answer.json()["reason"] == "quota_exceeded"
    # Five more at once, on both kinds of change.
    moves = [
        post(services, salon, f"/v1/appointments/{kept}/reschedule", {"start": kept_start})
        for _ in range(3)
    ]
    answers = await asyncio.gather(*moves, post(services, salon, cancel_path, {}))
    assert [a.status_code for a in answers] == [409] * 4, [a.text for a in answers]

    assert await _version(db, salon, kept) == before == ("confirmed", 1)
    rows = await notify_rows(db, kept)
    assert events(rows) == ["booking_confirmed"] + ["modification_quota_exceeded"] * 2
    kinds = sorted(row.payload["modification_type"] for row in rows[1:])
    assert kinds == ["cancel", "reschedule"]
    for row in rows[1:]:
        assert (row.payload["quota_limit"], row.payload["window_days"]) == (1, 30)
        assert row.payload["version"] == 1
    for row in rows:
        assert await notify({**ctx, "job_try": 1}, row.id) == "sent"
    messages = to(smtp.messages, email)
    notices = [m for m in messages if "kann nicht mehr geändert werden" in m["Subject"]]
    assert len(notices) == 2
    assert "höchstens 1 Terminänderungen möglich" in notices[0].get_content()


async def test_a_refusal_for_another_reason_sends_no_quota_notice(
    services: Services, db: Database
) -> None:
    salon = await create_salon(db)
    await put_policy(services, salon, "cancellation", {"hours_before": 24 * 30})
    appointment = await book(services, salon, customer_email(), local(4, 12))
    refused = await post(services, salon, f"/v1/appointments/{appointment}/cancel", {})
    assert refused.status_code == 409 and refused.json()["reason"] == "deadline_passed"
    assert events(await notify_rows(db, appointment)) == ["booking_confirmed"]


async def test_the_notice_is_found_behind_the_agents_answer_and_staged_once(
    services: Services, db: Database
) -> None:
    salon = await create_salon(db)
    appointment = await book(services, salon, customer_email(), local(4, 15))
    notice = QuotaNotice(
        salon.tenant.company_id,
        appointment,
        "cancel",
        {
            "appointment_id": appointment,
            "version": 7,
            "modification_type": "cancel",
            "quota_limit": 2,
            "window_days": 30,
        },
    )
    violation = PolicyViolation("quota", reason="quota_exceeded")
    violation.quota_notice = notice  # type: ignore[attr-defined]
    try:
        try:
            raise violation
        except PolicyViolation:
            raise ValueError("the agent's refusal") from None
    except ValueError as refusal:
        answer = AgentAnswer(200, {})
        answer.__cause__ = refusal
    assert notice_in(answer) is notice
    assert notice_in(AgentAnswer(200, {})) is None
    # Behind an exception that has a cause of its own, in its context.
    try:
        try:
            raise violation
        except PolicyViolation:
            raise RuntimeError("wrapped") from KeyError("unrelated cause")
    except RuntimeError as wrapped:
        assert notice_in(wrapped) is notice

    app_db: Database = services.apps["booking"].state.db
    staged = await asyncio.gather(*(stage_notice(app_db, None, notice) for _ in range(4)))
    assert sorted(staged) == [False, False, False, True]
    rows = await notify_rows(db, appointment)
    assert events(rows) == ["booking_confirmed", "modification_quota_exceeded"]
    assert rows[1].id == notice.outbox_id
