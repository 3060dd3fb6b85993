"""GET /v1/availability with no slots says why (`reason`), on both databases; plus the pure
reason function's precedence."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx

from services.booking.scheduling.availability import (
    AvailabilityQuery,
    ExistingAppointment,
    ServiceSpec,
    StaffCalendar,
    TimeOffPeriod,
    WorkingInterval,
)
from services.booking.scheduling.reasons import combined, empty_reason
from shared.db.engine import Database
from shared.models import Customer, Service, TimeOff
from tests.support.factories import Salon, create_salon, next_weekday, salon_appointment

BERLIN = ZoneInfo("Europe/Berlin")


def local(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=BERLIN)


async def ask(booking: httpx.AsyncClient, salon: Salon, day: date, **params: str | int) -> dict:
    response = await booking.get(
        "/v1/availability",
        params={"service_id": salon.service_id, "date": day.isoformat(), **params},
        headers=salon.headers,
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_slots_carry_no_reason(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    answer = await ask(booking, salon, next_weekday(1), staff_id=salon.staff_ids[0])
    assert len(answer["slots"]) == 13 + 19  # 09:00-12:00 and 13:00-17:30 every 15 min
    assert answer["reason"] is None


async def test_in_the_past(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    yesterday = date.today() - timedelta(days=1)
    assert await ask(booking, salon, yesterday) == {"slots": [], "reason": "in_the_past"}
    assert await ask(booking, salon, yesterday - timedelta(days=30), days=7) == {
        "slots": [],
        "reason": "in_the_past",
    }


async def test_beyond_window(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)  # the company's window: 60 days
    far = next_weekday(1, at_least_days=70)
    assert await ask(booking, salon, far) == {"slots": [], "reason": "beyond_window"}


async def test_closed_on_sunday_and_on_time_off(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)  # Mon-Sat hours only
    sunday = next_weekday(6)
    assert await ask(booking, salon, sunday) == {"slots": [], "reason": "closed"}
    tuesday = next_weekday(1)
    async with db.transaction(salon.tenant.company_id) as session:
        for staff_id in salon.staff_ids:
            session.add(
                TimeOff(
                    staff_id=staff_id,
                    starts_at=local(tuesday, 0).astimezone(UTC),
                    ends_at=local(tuesday + timedelta(days=1), 0).astimezone(UTC),
                )
            )
    assert await ask(booking, salon, tuesday) == {"slots": [], "reason": "closed"}
    # The next day is open again: slots and no reason.
    assert (await ask(booking, salon, tuesday, days=2))["reason"] is None


async def test_no_staff_for_service(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    async with db.transaction(salon.tenant.company_id) as session:
        lonely = Service(name="Färben", duration_minutes=60, price=0)
        session.add(lonely)
        await session.flush()
        lonely_id = lonely.id
    tuesday = next_weekday(1)
    response = await booking.get(
        "/v1/availability",
        params={"service_id": lonely_id, "date": tuesday.isoformat()},
        headers=salon.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"slots": [], "reason": "no_staff_for_service"}
    # Also when the named staff member does not exist / is not qualified.
    unknown = await ask(booking, salon, tuesday, staff_id="not-a-staff-member")
    assert unknown == {"slots": [], "reason": "no_staff_for_service"}


async def test_fully_booked(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    tuesday = next_weekday(1)
    async with db.transaction(salon.tenant.company_id) as session:
        customer = Customer(name="Max", phone="+491701234567")
        session.add(customer)
        await session.flush()
        for begin, end in ((9, 12.5), (13, 18)):
            start = local(tuesday, begin).astimezone(UTC)
            finish = local(tuesday, int(end), int(end % 1 * 60)).astimezone(UTC)
            session.add(
                salon_appointment(
                    salon,
                    customer.id,
                    start,
                    ends_at=finish,
                    blocked_until=finish,
                )
            )
    answer = await ask(booking, salon, tuesday, staff_id=salon.staff_ids[0])
    assert answer == {"slots": [], "reason": "fully_booked"}
    # Ben is still free that day.
    other = await ask(booking, salon, tuesday, staff_id=salon.staff_ids[1])
    assert other["reason"] is None and len(other["slots"]) == 32


# --- the pure function: precedence ----------------------------------------------------------

NOW = datetime(2026, 6, 1, 8, tzinfo=UTC)  # Monday 10:00 Berlin
WEEKDAYS = [WorkingInterval(wd, time(9), time(17)) for wd in range(5)]


def query(
    staff: list[StaffCalendar], day: date, days: int = 1, staff_id: str | None = None
) -> AvailabilityQuery:
    return AvailabilityQuery(
        "Europe/Berlin",
        ServiceSpec(60),
        staff,
        now=NOW,
        first_date=day,
        days=days,
        staff_id=staff_id,
        min_notice=timedelta(hours=2),
        booking_window_days=14,
    )


def test_reason_precedence() -> None:
    anna = StaffCalendar("a", "Anna", WEEKDAYS)
    # No staff wins even over a past date.
    assert empty_reason(query([], date(2026, 5, 1))) == "no_staff_for_service"
    assert empty_reason(query([anna], date(2026, 6, 2), staff_id="b")) == "no_staff_for_service"
    # A past Sunday is in the past before it is closed.
    assert empty_reason(query([anna], date(2026, 5, 31))) == "in_the_past"
    # A Saturday beyond the window is beyond the window before it is closed.
    assert empty_reason(query([anna], date(2026, 6, 20))) == "beyond_window"
    assert empty_reason(query([anna], date(2026, 6, 6))) == "closed"  # Saturday, in window
    # Today after the last start (now + notice = 12:00, hours end 17:00): open, so booked...
    busy = ExistingAppointment(
        datetime(2026, 6, 1, 10, tzinfo=UTC),
        datetime(2026, 6, 1, 15, tzinfo=UTC),
        datetime(2026, 6, 1, 10, tzinfo=UTC),
        datetime(2026, 6, 1, 15, tzinfo=UTC),
    )
    booked = StaffCalendar("a", "Anna", WEEKDAYS, (), (busy,))
    assert empty_reason(query([booked], date(2026, 6, 1))) == "fully_booked"
    # ...but with the afternoon off, only the past morning remains: in the past.
    off = TimeOffPeriod(datetime(2026, 6, 1, 10, tzinfo=UTC), datetime(2026, 6, 1, 15, tzinfo=UTC))
    assert empty_reason(query([StaffCalendar("a", "A", WEEKDAYS, (off,))], NOW.date())) == (
        "in_the_past"
    )


def test_combined_across_branches() -> None:
    assert combined(["no_staff_for_service", "closed"]) == "closed"
    assert combined(["closed", "fully_booked", "in_the_past"]) == "fully_booked"
    assert combined([]) == "no_staff_for_service"
