"""Closed days and opening hours in availability and booking (REST and agent), on both
databases; plus the pure effective-hours parsing."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import func, select

from services.booking.scheduling.availability import WorkingInterval
from services.booking.scheduling.calendar_loader import parse_weekly_hours, within
from shared.db.engine import Database
from shared.models import Appointment, BranchOpeningHours
from tests.booking.agent_support import call_function, enable_retell
from tests.support.factories import Salon, create_salon, next_weekday

BERLIN = ZoneInfo("Europe/Berlin")


def at(day: date, hh: int, mm: int = 0) -> str:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=BERLIN).isoformat()


async def close(booking: httpx.AsyncClient, salon: Salon, day: date, name: str) -> None:
    response = await booking.post(
        f"/v1/admin/branches/{salon.branch_id}/closed-days",
        json={"day": day.isoformat(), "name": name},
        headers=salon.headers,
    )
    assert response.status_code == 201, response.text


async def ask(booking: httpx.AsyncClient, salon: Salon, day: date, **params: str | int) -> dict:
    response = await booking.get(
        "/v1/availability",
        params={"service_id": salon.service_id, "date": day.isoformat(), **params},
        headers=salon.headers,
    )
    assert response.status_code == 200, response.text
    return response.json()


async def appointments(db: Database, salon: Salon) -> int:
    async with db.transaction(salon.tenant.company_id, write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(Appointment)) or 0)


async def test_a_closed_day_has_no_slots_and_says_closed(
    booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    tuesday = next_weekday(1)
    before = await ask(booking, salon, tuesday, days=2)
    assert len(before["slots"]) == 2 * (13 + 19)  # each start once, whoever is free
    await close(booking, salon, tuesday, "Betriebsausflug")

    assert await ask(booking, salon, tuesday) == {"slots": [], "reason": "closed"}
    assert await ask(booking, salon, tuesday, staff_id=salon.staff_ids[1]) == {
        "slots": [],
        "reason": "closed",
    }
    # The next day is open as before; only the closed day's slots are gone.
    both = await ask(booking, salon, tuesday, days=2)
    assert both["reason"] is None
    assert {slot["start"][:10] for slot in both["slots"]} == {
        date.fromordinal(tuesday.toordinal() + 1).isoformat()
    }
    assert len(both["slots"]) == len(before["slots"]) // 2


async def test_rest_bookings_on_a_closed_day_are_refused_like_outside_hours(
    booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    wednesday = next_weekday(2)
    await close(booking, salon, wednesday, "Inventur")
    base = {"service_id": salon.service_id, "customer": {"name": "Max", "phone": "+491701234567"}}
    for extra in ({"staff_id": salon.staff_ids[0]}, {}):  # a given staff member, and any staff
        response = await booking.post(
            "/v1/appointments",
            json={**base, **extra, "start": at(wednesday, 10)},
            headers=salon.headers,
        )
        assert response.status_code == 422, response.text
        problem = response.json()
        assert (problem["field"], problem["reason"]) == ("start", "hours"), problem
    assert await appointments(db, salon) == 0
    # The same time a week later books.
    later = date.fromordinal(wednesday.toordinal() + 7)
    response = await booking.post(
        "/v1/appointments",
        json={**base, "staff_id": salon.staff_ids[0], "start": at(later, 10)},
        headers=salon.headers,
    )
    assert response.status_code == 201, response.text
    assert await appointments(db, salon) == 1


async def test_agent_bookings_on_a_closed_day_are_refused(
    booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    await enable_retell(db, salon)
    thursday = next_weekday(3)
    await close(booking, salon, thursday, "Feiertag")
    args = {
        "service": "Herrenhaarschnitt",
        "date": thursday.isoformat(),
        "time": "10:00",
        "customer_name": "Max",
    }
    for extra in ({"staff": "Anna"}, {}):
        response = await call_function(booking, salon, "book_appointment", {**args, **extra})
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "invalid_request", response.json()
    assert await appointments(db, salon) == 0


async def test_opening_hours_narrow_staff_hours_defensively(
    booking: httpx.AsyncClient, db: Database
) -> None:
    """Rows written past the admin rule (e.g. before it existed): the intersection counts."""
    salon = await create_salon(db)
    tuesday = next_weekday(1)
    async with db.transaction(salon.tenant.company_id) as session:
        for weekday in range(7):
            session.add(
                BranchOpeningHours(
                    branch_id=salon.branch_id,
                    weekday=weekday,
                    start_time=time(10),
                    end_time=time(16),
                )
            )
    answer = await ask(booking, salon, tuesday, staff_id=salon.staff_ids[0])
    starts = [slot["start"] for slot in answer["slots"]]
    # 10:00-12:00 (30 min service) and 13:00-15:30, every 15 minutes.
    assert starts[0] == at(tuesday, 10) and starts[-1] == at(tuesday, 15, 30)
    assert len(starts) == 9 + 11
    response = await booking.post(
        "/v1/appointments",
        json={
            "service_id": salon.service_id,
            "staff_id": salon.staff_ids[0],
            "start": at(tuesday, 9),
            "customer": {"name": "Max", "phone": "+491701234567"},
        },
        headers=salon.headers,
    )
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "start"


def test_effective_hours_are_staff_hours_within_opening_hours() -> None:
    staff = "0|09:00:00|12:30:00,0|13:00:00|18:00:00,6|10:00:00|14:00:00"
    assert parse_weekly_hours(f"{staff};;") == (
        WorkingInterval(0, time(9), time(12, 30)),
        WorkingInterval(0, time(13), time(18)),
        WorkingInterval(6, time(10), time(14)),
    )
    # Opening Monday 10:00-17:00 only: Sunday closes, Monday is cut at both ends.
    closed = frozenset({date(2027, 1, 6), date(2027, 1, 4)})
    parsed = parse_weekly_hours(f"{staff};0|10:00:00|17:00:00;2027-01-06,2027-01-04")
    assert parsed == (
        WorkingInterval(0, time(10), time(12, 30), closed),
        WorkingInterval(0, time(13), time(17), closed),
    )
    assert parse_weekly_hours(";;") == ()
    assert parse_weekly_hours(None) == ()
    assert within(
        [WorkingInterval(2, time(8), time(0))],
        [WorkingInterval(2, time(7), time(9)), WorkingInterval(2, time(20), time(0))],
    ) == [WorkingInterval(2, time(8), time(9)), WorkingInterval(2, time(20), time(0))]
