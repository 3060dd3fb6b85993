"""Reminders with a controlled clock: exact boundaries, exactly once, DST nights, configured
offsets, cancelled and moved appointments, late bookings (both backends)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from services.notifications.jobs import notify
from services.notifications.reminders.service import stage_due
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.models import Appointment, Customer, NotificationReminder
from tests.conftest import Services
from tests.notifications.conftest import notify_rows
from tests.support.factories import Salon, create_salon
from tests.support.smtp_server import SmtpTestServer

BERLIN = ZoneInfo("Europe/Berlin")
SECOND = timedelta(seconds=1)


@pytest.fixture
async def salon(db: Database) -> Salon:
    return await create_salon(db)


async def insert_appointment(
    db: Database, salon: Salon, start: datetime, *, booked: datetime, email: str | None = None
) -> str:
    """An appointment booked at `booked` (the clock is ours here, not the booking path's)."""
    async with db.transaction(salon.tenant.company_id) as session:
        customer = Customer(
            name="Erika Musterfrau",
            phone="+4917" + str(uuid.uuid4().int)[:9],
            email=email or f"r-{uuid.uuid4().hex[:8]}@example.com",
        )
        session.add(customer)
        await session.flush()
        end = start + timedelta(minutes=30)
        appointment = Appointment(
            branch_id=salon.branch_id,
            service_id=salon.service_id,
            staff_id=salon.staff_ids[0],
            customer_id=customer.id,
            starts_at=start.astimezone(UTC),
            ends_at=end.astimezone(UTC),
            blocked_from=start.astimezone(UTC),
            blocked_until=end.astimezone(UTC),
            status="confirmed",
            created_at=booked,
            updated_at=booked,
        )
        session.add(appointment)
        await session.flush()
        return appointment.id


async def reminders(db: Database, appointment_id: str) -> list[tuple[str, str, datetime]]:
    async with db.transaction(SYSTEM, write=False) as session:
        rows = await session.execute(
            sa.select(
                NotificationReminder.event_type,
                NotificationReminder.channel,
                NotificationReminder.starts_at,
            )
            .where(NotificationReminder.appointment_id == appointment_id)
            .order_by(NotificationReminder.staged_at)
        )
        return [(e, c, s) for e, c, s in rows]


async def stage(ctx: dict[str, Any], now: datetime) -> None:
    await stage_due(ctx["db"], ctx["notification_cache"], now=now)


async def test_24h_and_2h_reminders_fire_at_their_exact_boundary_once(
    db: Database, salon: Salon, ctx: dict[str, Any], smtp: SmtpTestServer
) -> None:
    start = datetime(2027, 2, 9, 10, 0, tzinfo=BERLIN)  # a Tuesday, CET
    appointment = await insert_appointment(db, salon, start, booked=start - timedelta(days=10))
    utc_start = start.astimezone(UTC)

    await stage(ctx, utc_start - timedelta(hours=24) - SECOND)
    assert await reminders(db, appointment) == []
    await stage(ctx, utc_start - timedelta(hours=24))
    assert await reminders(db, appointment) == [("booking_reminder_24h", "email", utc_start)]
    await stage(ctx, utc_start - timedelta(hours=24) + timedelta(seconds=59))
    await stage(ctx, utc_start - timedelta(hours=3))
    assert len(await reminders(db, appointment)) == 1

    await stage(ctx, utc_start - timedelta(hours=2) - SECOND)
    assert len(await reminders(db, appointment)) == 1
    await stage(ctx, utc_start - timedelta(hours=2))
    await stage(ctx, utc_start - timedelta(minutes=5))
    assert await reminders(db, appointment) == [
        ("booking_reminder_24h", "email", utc_start),
        ("booking_reminder_2h", "sms", utc_start),
    ]
    # The staged notify job sends the reminder with the local time written out.
    confirm_24h = [
        row for row in await notify_rows(db, appointment)
        if row.payload["event_type"] == "booking_reminder_24h"
    ]  # fmt: skip
    assert len(confirm_24h) == 1
    assert await notify(ctx, confirm_24h[0].id) == "sent"
    [message] = [
        m for m in smtp.messages if "Dienstag, 9. Februar 2027 um 10:00 Uhr" in m.get_content()
    ]
    assert "Herrenhaarschnitt" in message.get_content()


@pytest.mark.parametrize(
    ("local_start", "due_utc"),
    [
        # Autumn: the night of 25 Oct 2026 is 25 h long; 24 h before 10:00 CET is 11:00 CEST.
        (datetime(2026, 10, 25, 10, 0, tzinfo=BERLIN), datetime(2026, 10, 24, 9, 0, tzinfo=UTC)),
        # Spring: the night of 29 Mar 2026 is 23 h long; 24 h before 10:00 CEST is 09:00 CET.
        (datetime(2026, 3, 29, 10, 0, tzinfo=BERLIN), datetime(2026, 3, 28, 8, 0, tzinfo=UTC)),
    ],
)
async def test_reminders_across_a_dst_night_count_elapsed_hours(
    db: Database, salon: Salon, ctx: dict[str, Any], local_start: datetime, due_utc: datetime
) -> None:
    appointment = await insert_appointment(
        db, salon, local_start, booked=local_start - timedelta(days=20)
    )
    # The wall-clock answer (same local time the day before) is an hour off: nothing yet.
    wall_clock = (local_start - timedelta(days=1)).replace(tzinfo=None)
    wall_clock_utc = wall_clock.replace(tzinfo=BERLIN).astimezone(UTC)
    assert abs(wall_clock_utc - due_utc) == timedelta(hours=1)
    await stage(ctx, due_utc - SECOND)
    assert await reminders(db, appointment) == []
    await stage(ctx, due_utc)
    assert [r[0] for r in await reminders(db, appointment)] == ["booking_reminder_24h"]
    assert local_start.astimezone(UTC) - due_utc == timedelta(hours=24)


async def test_cancelled_appointments_get_no_reminder(
    db: Database, salon: Salon, ctx: dict[str, Any]
) -> None:
    start = datetime(2027, 2, 10, 11, 0, tzinfo=BERLIN)
    appointment = await insert_appointment(db, salon, start, booked=start - timedelta(days=5))
    async with db.transaction(salon.tenant.company_id) as session:
        await session.execute(
            sa.update(Appointment).where(Appointment.id == appointment).values(status="cancelled")
        )
    for hours in (24, 2):
        await stage(ctx, start.astimezone(UTC) - timedelta(hours=hours))
    assert await reminders(db, appointment) == []


async def test_a_moved_appointment_gets_reminders_for_its_new_time_only(
    db: Database, salon: Salon, ctx: dict[str, Any], smtp: SmtpTestServer
) -> None:
    start = datetime(2027, 2, 11, 9, 0, tzinfo=BERLIN)
    appointment = await insert_appointment(db, salon, start, booked=start - timedelta(days=5))
    old_utc = start.astimezone(UTC)
    await stage(ctx, old_utc - timedelta(hours=24))
    [staged_old] = await notify_rows(db, appointment)
    # Moved two days later after the old reminder was staged but before it was sent.
    new_start = old_utc + timedelta(days=2)
    async with db.transaction(salon.tenant.company_id) as session:
        await session.execute(
            sa.update(Appointment)
            .where(Appointment.id == appointment)
            .values(
                starts_at=new_start,
                ends_at=new_start + timedelta(minutes=30),
                blocked_from=new_start,
                blocked_until=new_start + timedelta(minutes=30),
                version=Appointment.version + 1,
            )
        )
    assert await notify(ctx, staged_old.id) == "nothing_to_send"
    await stage(ctx, old_utc - timedelta(hours=2))  # the old 2 h mark: nothing
    assert len(await reminders(db, appointment)) == 1
    await stage(ctx, new_start - timedelta(hours=24))
    assert await reminders(db, appointment) == [
        ("booking_reminder_24h", "email", old_utc),
        ("booking_reminder_24h", "email", new_start),
    ]


async def test_a_late_booking_skips_the_reminder_that_was_due_before_it(
    db: Database, salon: Salon, ctx: dict[str, Any]
) -> None:
    start = datetime(2027, 2, 12, 15, 0, tzinfo=BERLIN)
    utc_start = start.astimezone(UTC)
    appointment = await insert_appointment(db, salon, start, booked=utc_start - timedelta(hours=3))
    await stage(ctx, utc_start - timedelta(hours=3) + SECOND)
    assert await reminders(db, appointment) == []
    await stage(ctx, utc_start - timedelta(hours=2))
    assert [r[0] for r in await reminders(db, appointment)] == ["booking_reminder_2h"]


async def test_a_configured_offset_moves_the_reminder(
    db: Database, salon: Salon, ctx: dict[str, Any], services: Services
) -> None:
    response = await services.clients["notifications"].put(
        f"/v1/notification-configs/branch/{salon.branch_id}/booking_reminder_24h/email",
        json={"reminder_offset_minutes": 48 * 60},
        headers=salon.headers,
    )
    assert response.status_code == 201, response.text
    start = datetime(2027, 2, 13, 10, 0, tzinfo=BERLIN)
    utc_start = start.astimezone(UTC)
    appointment = await insert_appointment(db, salon, start, booked=utc_start - timedelta(days=9))
    await stage(ctx, utc_start - timedelta(hours=48) - SECOND)
    assert await reminders(db, appointment) == []
    await stage(ctx, utc_start - timedelta(hours=48))
    assert await reminders(db, appointment) == [("booking_reminder_24h", "email", utc_start)]
