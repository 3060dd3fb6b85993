"""A reschedule respects Cal.com's free slots as book() does, asking for moving the appointment's
own Cal.com booking (`bookingUidToReschedule`), which Cal.com would otherwise count as busy; the
local calendar alone decides when Cal.com cannot say. Cal.com is the fake, real HTTP."""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from datetime import time as dtime
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.models import Appointment, Company, Service
from tests.booking.agent_support import CALLER, call_function, enable_retell
from tests.booking.test_booking_api import at
from tests.booking.test_calcom_availability import SLOTS, berlin, fallbacks, slot_calls
from tests.booking.test_changes import assert_untouched, book, reschedule, snapshot
from tests.support.factories import Salon, create_salon, next_weekday
from tests.support.fake_calcom import FakeCalcom

_event_type_ids = itertools.count(random.randint(10_000, 900_000) + 1_000_000)


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeCalcom]:
    async with FakeCalcom() as running:
        yield running


async def connect(db: Database, salon: Salon, fake: FakeCalcom, length_minutes: int = 30) -> int:
    """Cal.com for the salon's company; its service mapped to a new event type of the fake open
    10:00-12:00 Berlin time every day, slots every `length_minutes`."""
    event_type_id = next(_event_type_ids)
    host = f"host{event_type_id}@salon.example"
    fake.add_event_type(
        event_type_id, length_minutes, host, time_zone="Europe/Berlin", hours=(dtime(10), dtime(12))
    )
    async with db.transaction(SYSTEM) as session:
        await session.execute(
            update(Company)
            .where(Company.id == salon.tenant.company_id)
            .values(calcom_api_key="cal_live_test", calcom_base_url=fake.url)
        )
        await session.execute(
            update(Service)
            .where(Service.id == salon.service_id)
            .values(calcom_event_type_id=event_type_id)
        )
    return event_type_id


async def synced(
    db: Database, fake: FakeCalcom, event_type_id: int, appointment: dict[str, Any]
) -> str:
    """What the sync job leaves behind: the appointment's 30-minute booking in Cal.com (as our
    sync sends `lengthInMinutes`), its uid on the appointment. Returns the uid."""
    remote = fake.book(
        event_type_id,
        datetime.fromisoformat(appointment["start"]),
        metadata={"appointment_id": appointment["id"]},
        length_minutes=30,
    )
    async with db.transaction(SYSTEM) as session:
        await session.execute(
            update(Appointment)
            .where(Appointment.id == appointment["id"])
            .values(calcom_booking_uid=remote["uid"], sync_status="synced")
        )
    return str(remote["uid"])


async def test_reschedule_to_a_start_calcom_does_not_list_is_slot_taken_then_one_it_lists_moves(
    booking: httpx.AsyncClient, db: Database, fake: FakeCalcom
) -> None:
    salon = await create_salon(db)
    event_type_id = await connect(db, salon, fake)
    day = next_weekday(2)
    mine = await book(booking, salon, at(day, 10))
    uid = await synced(db, fake, event_type_id, mine)
    fake.book(event_type_id, berlin(day, 11))  # booked in Cal.com itself, unknown to us
    before = await snapshot(db, salon, mine["id"])

    for attempt in (1, 2):
        calls = slot_calls(fake)
        refused = await reschedule(booking, salon, mine["id"], at(day, 11))
        assert refused.status_code == 409, refused.text
        problem = refused.json()
        assert problem["code"] == "slot_taken"
        # Alternatives are asked for the move too: 10:00, our own booking's time, is offered.
        assert [a["start"] for a in problem["alternatives"]] == [
            at(day, 10, 30),
            at(day, 11, 30),
            at(day, 10),
        ]
        # The day, then the week of alternatives, both for moving our booking; not cached in
        # Redis, so the second attempt asks again.
        assert slot_calls(fake) == calls + 2, attempt
        asked = fake.slot_queries[-2:]
        assert [q.get("bookingUidToReschedule") for q in asked] == [uid, uid]
        assert [(q["start"], q["end"]) for q in asked] == [
            (str(day - timedelta(days=1)), str(day + timedelta(days=1))),
            (str(day - timedelta(days=1)), str(day + timedelta(days=7))),
        ]
    assert_untouched(before, await snapshot(db, salon, mine["id"]))

    moved = await reschedule(booking, salon, mine["id"], at(day, 11, 30))
    assert moved.status_code == 200, moved.text
    assert moved.json()["start"] == at(day, 11, 30)
    assert moved.json()["sync_status"] == "pending"
    after = await snapshot(db, salon, mine["id"])
    assert after.appointment.starts_at == berlin(day, 11, 30)
    assert after.appointment.version == before.appointment.version + 1
    assert fake.violations == []


async def test_moving_by_15_minutes_inside_its_own_calcom_booking_is_allowed(
    booking: httpx.AsyncClient, db: Database, fake: FakeCalcom
) -> None:
    salon = await create_salon(db)
    event_type_id = await connect(db, salon, fake, length_minutes=15)
    day = next_weekday(3)
    mine = await book(booking, salon, at(day, 10))
    uid = await synced(db, fake, event_type_id, mine)  # 10:00-10:30 in Cal.com
    # Asked plainly, Cal.com counts our booking as busy: 10:15 is not listed.
    async with httpx.AsyncClient(base_url=fake.url, timeout=5) as http:
        plain = await http.get(
            "/v2/slots",
            params={
                "eventTypeId": str(event_type_id),
                "start": str(day),
                "end": str(day),
                "timeZone": "Europe/Berlin",
            },
            headers={"cal-api-version": "2024-09-04"},
        )
    assert plain.status_code == 200, plain.text
    assert [s["start"] for s in plain.json()["data"][str(day)]][:2] == [
        berlin(day, 10, 30).isoformat(timespec="milliseconds"),
        berlin(day, 10, 45).isoformat(timespec="milliseconds"),
    ]

    calls = slot_calls(fake)
    moved = await reschedule(booking, salon, mine["id"], at(day, 10, 15))
    assert moved.status_code == 200, moved.text
    assert moved.json()["start"] == at(day, 10, 15)
    assert slot_calls(fake) == calls + 1
    assert fake.slot_queries[-1]["bookingUidToReschedule"] == uid
    assert fake.violations == []


async def test_calcom_down_the_local_calendar_decides_the_reschedule(
    booking: httpx.AsyncClient, db: Database, fake: FakeCalcom
) -> None:
    salon = await create_salon(db)
    event_type_id = await connect(db, salon, fake)
    day = next_weekday(4)
    mine = await book(booking, salon, at(day, 10))
    await synced(db, fake, event_type_id, mine)
    unavailable, refused = fallbacks("unavailable"), fake.refused
    fake.control(down=True, match=SLOTS)
    try:
        # 09:00 is outside the event type's hours, but Cal.com cannot say so now.
        moved = await reschedule(booking, salon, mine["id"], at(day, 9))
    finally:
        fake.control(down=None)
    assert moved.status_code == 200, moved.text
    assert moved.json()["start"] == at(day, 9)
    assert moved.json()["sync_status"] == "pending"
    assert fake.refused == refused + 1  # asked once, then the request stayed local
    assert fallbacks("unavailable") == unavailable + 1


async def test_agent_reschedule_respects_calcom(
    booking: httpx.AsyncClient, db: Database, fake: FakeCalcom
) -> None:
    salon = await create_salon(db)
    await enable_retell(db, salon)
    event_type_id = await connect(db, salon, fake)
    day = next_weekday(5)
    mine = await book(booking, salon, at(day, 10), phone=CALLER)
    uid = await synced(db, fake, event_type_id, mine)
    fake.book(event_type_id, berlin(day, 11))
    before = await snapshot(db, salon, mine["id"])

    def move_to(hh_mm: str) -> dict[str, str]:
        return {"appointment_id": mine["id"], "new_date": day.isoformat(), "new_time": hh_mm}

    response = await call_function(booking, salon, "reschedule_appointment", move_to("11:00"))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == "slot_taken", answer
    assert [a["start"] for a in answer["alternatives"]] == [
        at(day, 10, 30),
        at(day, 11, 30),
        at(day, 10),
    ]
    assert fake.slot_queries[-1]["bookingUidToReschedule"] == uid
    assert_untouched(before, await snapshot(db, salon, mine["id"]))

    response = await call_function(booking, salon, "reschedule_appointment", move_to("11:30"))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "rescheduled"
    assert response.json()["start"] == at(day, 11, 30)
