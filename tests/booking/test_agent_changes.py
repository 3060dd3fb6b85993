"""The agent's cancel_appointment and reschedule_appointment, signed like Retell: only the
caller's own appointments, German answers, policy refusals and outages said aloud, retries
answered once."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from shared.db.engine import Database
from shared.models import AppointmentModification
from tests.booking.agent_support import CALLER, call_function, enable_retell
from tests.booking.test_booking_api import at
from tests.booking.test_changes import (
    OTHER_PHONE,
    assert_untouched,
    book,
    put_policy,
    snapshot,
    soon_day,
    unreachable_policy,
    utc,
)
from tests.conftest import Services
from tests.support.factories import Salon, create_salon, next_weekday

WEEKDAYS = ["Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"]
MONTHS = [
    "Januar",
    "Februar",
    "März",
    "April",
    "Mai",
    "Juni",
    "Juli",
    "August",
    "September",
    "Oktober",
    "November",
    "Dezember",
]


def spoken_day(day: date) -> str:
    return f"{WEEKDAYS[day.weekday()]}, {day.day}. {MONTHS[day.month - 1]}"


async def _salon(db: Database) -> Salon:
    salon = await create_salon(db)
    await enable_retell(db, salon)
    return salon


async def _modifications(db: Database, salon: Salon) -> list[AppointmentModification]:
    async with db.transaction(salon.tenant.company_id, write=False) as session:
        return list(await session.scalars(select(AppointmentModification)))


async def test_cancel_by_appointment_id(services: Services, db: Database) -> None:
    booking = services.clients["booking"]
    salon = await _salon(db)
    day = next_weekday(1)
    created = await book(booking, salon, at(day, 10), phone=CALLER)
    response = await call_function(
        booking, salon, "cancel_appointment", {"appointment_id": created["id"]}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "cancelled",
        "appointment_id": created["id"],
        "fee": "0.00",
        "currency": "EUR",
        "message": f"Ihr Termin am {spoken_day(day)} um 10:00 Uhr ist storniert.",
    }
    state = await snapshot(db, salon, created["id"])
    assert state.appointment.status == "cancelled"
    assert [(m.modification_type, m.actor) for m in state.modifications] == [("cancel", "agent")]
    assert [(s.stat_type, s.count) for s in state.stats] == [("cancellation_count", 1)]


async def test_cancel_by_date_and_time_of_the_callers_own_appointment(
    services: Services, db: Database
) -> None:
    booking = services.clients["booking"]
    salon = await _salon(db)
    day = next_weekday(2)
    # The caller has two appointments that day; someone else has one at the named time too.
    first = await book(booking, salon, at(day, 9), phone=CALLER)
    second = await book(booking, salon, at(day, 14), phone=CALLER)
    foreign = await book(booking, salon, at(day, 14), phone=OTHER_PHONE, staff=1)
    response = await call_function(
        booking,
        salon,
        "cancel_appointment",
        {"date": day.isoformat(), "time": "14:00", "reason": "Termin verschoben"},
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == "cancelled"
    assert answer["appointment_id"] == second["id"]
    assert answer["message"] == f"Ihr Termin am {spoken_day(day)} um 14:00 Uhr ist storniert."
    assert (await snapshot(db, salon, second["id"])).appointment.status == "cancelled"
    assert (await snapshot(db, salon, first["id"])).appointment.status == "confirmed"
    assert (await snapshot(db, salon, foreign["id"])).appointment.status == "confirmed"


async def test_another_callers_appointment_is_not_found(services: Services, db: Database) -> None:
    booking = services.clients["booking"]
    salon = await _salon(db)
    day = next_weekday(3)
    foreign = await book(booking, salon, at(day, 10), phone=OTHER_PHONE)
    before = await snapshot(db, salon, foreign["id"])
    for name, args in (
        ("cancel_appointment", {"appointment_id": foreign["id"]}),
        ("cancel_appointment", {"date": day.isoformat(), "time": "10:00"}),
        (
            "reschedule_appointment",
            {"appointment_id": foreign["id"], "new_date": day.isoformat(), "new_time": "15:00"},
        ),
    ):
        response = await call_function(booking, salon, name, args)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["status"] == "not_found", answer
        assert answer["message"].startswith(
            "Unter Ihrer Telefonnummer habe ich leider keinen passenden Termin gefunden."
        )
    # An explicit customer_phone does not widen what the caller may touch.
    response = await call_function(
        booking,
        salon,
        "cancel_appointment",
        {"appointment_id": foreign["id"], "customer_phone": OTHER_PHONE},
    )
    assert response.json()["status"] == "not_found"
    assert_untouched(before, await snapshot(db, salon, foreign["id"]))


async def test_reschedule_moves_the_callers_appointment(services: Services, db: Database) -> None:
    booking = services.clients["booking"]
    salon = await _salon(db)
    day = next_weekday(1)
    created = await book(booking, salon, at(day, 10), phone=CALLER)
    response = await call_function(
        booking,
        salon,
        "reschedule_appointment",
        {
            "date": day.isoformat(),
            "time": "10:00",
            "new_date": day.isoformat(),
            "new_time": "15:30",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "rescheduled",
        "appointment_id": created["id"],
        "start": at(day, 15, 30),
        "fee": "0.00",
        "currency": "EUR",
        "message": (
            f"Ich habe Ihren Termin am {spoken_day(day)} von 10:00 Uhr auf 15:30 Uhr verschoben."
        ),
    }
    state = await snapshot(db, salon, created["id"])
    assert state.appointment.starts_at == utc(at(day, 15, 30))
    assert [
        (m.modification_type, m.actor, m.old_starts_at, m.new_starts_at)
        for m in state.modifications
    ] == [("reschedule", "agent", utc(at(day, 10)), utc(at(day, 15, 30)))]


async def test_reschedule_to_a_taken_time_offers_alternatives(
    services: Services, db: Database
) -> None:
    booking = services.clients["booking"]
    salon = await _salon(db)
    day = next_weekday(1)
    mine = await book(booking, salon, at(day, 10), phone=CALLER)
    await book(booking, salon, at(day, 11), phone=OTHER_PHONE)
    before = await snapshot(db, salon, mine["id"])
    response = await call_function(
        booking,
        salon,
        "reschedule_appointment",
        {"appointment_id": mine["id"], "new_date": day.isoformat(), "new_time": "11:00"},
    )
    answer = response.json()
    assert answer["status"] == "slot_taken", answer
    # The appointment being moved does not block its own alternatives (see test_changes).
    assert [a["start"] for a in answer["alternatives"]] == [
        at(day, 10, 15),
        at(day, 11, 45),
        at(day, 10),
    ]
    assert answer["message"].startswith(
        f"Der Termin am {spoken_day(day)} um 11:00 Uhr ist leider schon vergeben."
    )
    assert_untouched(before, await snapshot(db, salon, mine["id"]))


async def test_reschedule_to_a_closed_time_is_invalid_request(
    services: Services, db: Database
) -> None:
    booking = services.clients["booking"]
    salon = await _salon(db)
    day = next_weekday(1)
    created = await book(booking, salon, at(day, 10), phone=CALLER)
    before = await snapshot(db, salon, created["id"])
    for new_date, new_time in ((next_weekday(6), "10:00"), (day, "12:45"), (day, "19:00")):
        response = await call_function(
            booking,
            salon,
            "reschedule_appointment",
            {
                "appointment_id": created["id"],
                "new_date": new_date.isoformat(),
                "new_time": new_time,
            },
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "invalid_request", (new_time, response.json())
    assert_untouched(before, await snapshot(db, salon, created["id"]))


async def test_policy_refusal_is_not_allowed_with_reason(services: Services, db: Database) -> None:
    booking = services.clients["booking"]
    salon = await _salon(db)
    config = {"hours_before": 96, "allow_late": False}
    await put_policy(services, salon, "cancellation", config)
    await put_policy(services, salon, "reschedule", config)
    day = soon_day()
    created = await book(booking, salon, at(day, 10), phone=CALLER)
    before = await snapshot(db, salon, created["id"])
    cancel = await call_function(
        booking, salon, "cancel_appointment", {"appointment_id": created["id"]}
    )
    move = await call_function(
        booking,
        salon,
        "reschedule_appointment",
        {"appointment_id": created["id"], "new_date": day.isoformat(), "new_time": "15:00"},
    )
    # 96 elapsed hours before the start, spoken in Berlin time (DST-safe).
    deadline = (utc(at(day, 10)) - timedelta(hours=96)).astimezone(ZoneInfo("Europe/Berlin"))
    spoken_deadline = f"{spoken_day(deadline.date())} um {deadline:%H:%M} Uhr"
    for response, verb in ((cancel, "stornieren"), (move, "verschieben")):
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["status"] == "not_allowed", answer
        assert answer["reason"] == "deadline_passed"
        assert answer["message"] == (
            f"Leider kann ich den Termin nicht mehr {verb}, das war nur bis {spoken_deadline} "
            "möglich. Soll ich einen Rückruf veranlassen?"
        )
    assert_untouched(before, await snapshot(db, salon, created["id"]))


async def test_reschedule_quota_per_appointment_is_not_allowed(
    services: Services, db: Database
) -> None:
    booking = services.clients["booking"]
    salon = await _salon(db)
    await put_policy(services, salon, "reschedule", {"max_per_appointment": 1})
    day = next_weekday(2)
    created = await book(booking, salon, at(day, 10), phone=CALLER)
    args = {"appointment_id": created["id"], "new_date": day.isoformat()}
    first = await call_function(
        booking, salon, "reschedule_appointment", {**args, "new_time": "11:00"}
    )
    assert first.json()["status"] == "rescheduled", first.text
    second = await call_function(
        booking, salon, "reschedule_appointment", {**args, "new_time": "15:00"}
    )
    assert second.json()["status"] == "not_allowed", second.text
    assert second.json()["reason"] == "max_reschedules_reached"
    assert "Höchstzahl an Verschiebungen" in second.json()["message"]
    state = await snapshot(db, salon, created["id"])
    assert state.appointment.starts_at == utc(at(day, 11))
    assert len(state.modifications) == 1


async def test_policy_service_unreachable_needs_callback(services: Services, db: Database) -> None:
    booking = services.clients["booking"]
    salon = await _salon(db)
    day = next_weekday(2)
    created = await book(booking, salon, at(day, 10), phone=CALLER)
    before = await snapshot(db, salon, created["id"])
    async with unreachable_policy(services):
        cancel = await call_function(
            booking, salon, "cancel_appointment", {"appointment_id": created["id"]}
        )
        move = await call_function(
            booking,
            salon,
            "reschedule_appointment",
            {"appointment_id": created["id"], "new_date": day.isoformat(), "new_time": "15:00"},
        )
    for response in (cancel, move):
        assert response.status_code == 200, response.text
        assert response.json() == {
            "status": "needs_callback",
            "message": (
                "Entschuldigung, ich kann das gerade nicht erledigen, "
                "soll ich einen Rückruf veranlassen?"
            ),
        }
    assert_untouched(before, await snapshot(db, salon, created["id"]))


async def test_retry_of_the_same_cancel_call_returns_the_first_answer(
    services: Services, db: Database
) -> None:
    booking = services.clients["booking"]
    salon = await _salon(db)
    day = next_weekday(3)
    created = await book(booking, salon, at(day, 16), phone=CALLER)
    args = {"date": day.isoformat(), "time": "16:00"}
    first = await call_function(booking, salon, "cancel_appointment", args, call_id="call_cx_1")
    assert first.status_code == 200
    assert first.json()["status"] == "cancelled", first.text
    retries = [await call_function(booking, salon, "cancel_appointment", args, call_id="call_cx_1")]
    retries += await asyncio.gather(
        *(
            call_function(booking, salon, "cancel_appointment", args, call_id="call_cx_1")
            for _ in range(3)
        )
    )
    for retry in retries:
        assert retry.status_code == 200
        assert retry.json() == first.json()
        assert retry.headers.get("Idempotent-Replayed") == "true"
    mods = await _modifications(db, salon)
    assert [(m.appointment_id, m.modification_type) for m in mods] == [(created["id"], "cancel")]
    # The same words in a new call are a new request: the appointment is no longer live.
    fresh = await call_function(booking, salon, "cancel_appointment", args, call_id="call_cx_2")
    assert fresh.json()["status"] == "not_found"


async def test_simultaneous_cancels_from_separate_calls_all_answer_200(
    services: Services, db: Database
) -> None:
    """One wins; the others lose the compare-and-set (MariaDB) or find no live appointment
    (SQLite serializes them): a spoken answer either way, never a bare 409 to Retell."""
    booking = services.clients["booking"]
    for round_no in range(5):
        salon = await _salon(db)
        created = await book(booking, salon, at(next_weekday(1), 10), phone=CALLER)
        responses = await asyncio.gather(
            *(
                call_function(
                    booking,
                    salon,
                    "cancel_appointment",
                    {"appointment_id": created["id"]},
                    call_id=f"call_twin_{round_no}_{i}",
                )
                for i in range(3)
            )
        )
        assert [r.status_code for r in responses] == [200, 200, 200], [r.text for r in responses]
        statuses = sorted(r.json()["status"] for r in responses)
        assert statuses.count("cancelled") == 1, statuses
        assert set(statuses) - {"cancelled"} <= {"not_found", "needs_callback"}, statuses
        state = await snapshot(db, salon, created["id"])
        assert state.appointment.status == "cancelled"
        assert len(state.modifications) == 1
