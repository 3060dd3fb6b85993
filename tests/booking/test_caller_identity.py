"""Caller identity (issue 13): the signed call's caller ID decides whose appointments a call
reaches, never a number in the args; without a caller ID only booking reference + name do,
with at most 5 failed tries per call and per reference and hour (Redis, across replicas)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select

from services.booking.agent import speech
from shared.db.engine import Database
from shared.models import Customer
from shared.web.rate_limit import RateLimits
from tests.booking.agent_support import CALLER, call_function, enable_retell
from tests.booking.test_booking_api import at
from tests.booking.test_changes import OTHER_PHONE, assert_untouched, snapshot
from tests.conftest import Services
from tests.support.factories import Salon, create_salon, next_weekday

NAME = "Jürgen Müller-Weiß"


async def _salon(db: Database) -> Salon:
    salon = await create_salon(db)
    await enable_retell(db, salon)
    return salon


async def _book(
    client: httpx.AsyncClient,
    salon: Salon,
    start: str,
    phone: str = OTHER_PHONE,
    name: str = NAME,
    staff: int = 0,
) -> dict[str, Any]:
    response = await client.post(
        "/v1/appointments",
        json={
            "service_id": salon.service_id,
            "staff_id": salon.staff_ids[staff],
            "start": start,
            "customer": {"name": name, "phone": phone, "email": "juergen@example.com"},
        },
        headers=salon.headers,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def _wrong(reference: str) -> str:
    """Another well-formed reference."""
    return ("B" if reference[0] != "B" else "C") + reference[1:]


async def _anonymous(
    client: httpx.AsyncClient,
    salon: Salon,
    name: str,
    args: dict[str, Any],
    call_id: str | None = None,
) -> dict[str, Any]:
    """A function call with a withheld number (no `from_number`)."""
    response = await call_function(
        client, salon, name, args, caller=None, call_id=call_id or f"call_{uuid.uuid4().hex}"
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_a_withheld_number_cannot_list_or_cancel_by_saying_a_number(
    services: Services, db: Database
) -> None:
    client = services.clients["booking"]
    salon = await _salon(db)
    day = next_weekday(2)
    victim = await _book(client, salon, at(day, 10))
    before = await snapshot(db, salon, victim["id"])
    listed = await _anonymous(client, salon, "list_appointments", {"customer_phone": OTHER_PHONE})
    assert listed == {"status": "not_found", "message": speech.identify_by_reference()}
    for args in (
        {"customer_phone": OTHER_PHONE, "appointment_id": victim["id"]},
        {"customer_phone": OTHER_PHONE, "date": day.isoformat(), "time": "10:00"},
        {"customer_phone": OTHER_PHONE, "customer_name": NAME},
    ):
        answer = await _anonymous(client, salon, "cancel_appointment", args)
        assert answer == {"status": "not_found", "message": speech.identify_by_reference()}
    moved = await _anonymous(
        client,
        salon,
        "reschedule_appointment",
        {
            "customer_phone": OTHER_PHONE,
            "appointment_id": victim["id"],
            "new_date": day.isoformat(),
            "new_time": "15:00",
        },
    )
    assert moved["status"] == "not_found"
    assert_untouched(before, await snapshot(db, salon, victim["id"]))


async def test_reference_and_the_right_name_reach_that_one_appointment(
    services: Services, db: Database
) -> None:
    client = services.clients["booking"]
    salon = await _salon(db)
    day = next_weekday(3)
    mine = await _book(client, salon, at(day, 10))
    other = await _book(client, salon, at(day, 11))  # same customer, another booking
    reference = mine["reference"]
    spoken = " ".join(reference.lower())  # "k 7 m 2 p 9", as a transcript may pass it
    lenient = "  juergen   MUELLER weiss "
    listed = await _anonymous(
        client,
        salon,
        "list_appointments",
        {"reference": spoken, "customer_name": lenient},
    )
    assert listed["status"] == "ok"
    assert [(a["appointment_id"], a["reference"], a["start"]) for a in listed["appointments"]] == [
        (mine["id"], reference, at(day, 10))
    ]
    cancelled = await _anonymous(
        client, salon, "cancel_appointment", {"reference": reference, "customer_name": NAME}
    )
    assert cancelled["status"] == "cancelled", cancelled
    assert cancelled["appointment_id"] == mine["id"]
    assert (await snapshot(db, salon, mine["id"])).appointment.status == "cancelled"
    assert (await snapshot(db, salon, other["id"])).appointment.status == "confirmed"
    moved = await _anonymous(
        client,
        salon,
        "reschedule_appointment",
        {
            "reference": other["reference"],
            "customer_name": NAME,
            "new_date": day.isoformat(),
            "new_time": "15:00",
        },
    )
    assert moved["status"] == "rescheduled", moved
    assert moved["start"] == at(day, 15)


async def test_a_wrong_name_or_reference_is_not_found_and_changes_nothing(
    services: Services, db: Database
) -> None:
    client = services.clients["booking"]
    salon = await _salon(db)
    day = next_weekday(4)
    mine = await _book(client, salon, at(day, 10))
    before = await snapshot(db, salon, mine["id"])
    wrong_name = await _anonymous(
        client,
        salon,
        "cancel_appointment",
        {"reference": mine["reference"], "customer_name": "Erika Müller"},
    )
    unknown_reference = await _anonymous(
        client,
        salon,
        "cancel_appointment",
        {"reference": _wrong(mine["reference"]), "customer_name": NAME},
    )
    malformed = await _anonymous(
        client, salon, "list_appointments", {"reference": "O0I1L", "customer_name": NAME}
    )
    expected = {"status": "not_found", "message": speech.not_identified()}
    # The same answer whether the reference exists or not.
    assert wrong_name == unknown_reference == malformed == expected
    assert_untouched(before, await snapshot(db, salon, mine["id"]))


async def test_the_sixth_try_of_a_call_is_refused_even_when_right(
    services: Services, db: Database
) -> None:
    client = services.clients["booking"]
    salon = await _salon(db)
    mine = await _book(client, salon, at(next_weekday(1), 10))
    call_id = f"call_{uuid.uuid4().hex}"
    for attempt in range(5):
        wrong = f"{'BCDEF'[attempt]}{mine['reference'][1:]}"
        if wrong == mine["reference"]:
            wrong = _wrong(wrong)
        answer = await _anonymous(
            client,
            salon,
            "list_appointments",
            {"reference": wrong, "customer_name": NAME},
            call_id=call_id,
        )
        assert answer["message"] == speech.not_identified(), (attempt, answer)
    right = {"reference": mine["reference"], "customer_name": NAME}
    refused = await _anonymous(client, salon, "cancel_appointment", right, call_id=call_id)
    assert refused == {
        "status": "not_found",
        "message": speech.tries_exhausted(),
        "reason": "too_many_attempts",
    }
    assert (await snapshot(db, salon, mine["id"])).appointment.status == "confirmed"
    # Another call is not bound by this call's failures (nor was the reference charged).
    listed = await _anonymous(client, salon, "list_appointments", right)
    assert [a["appointment_id"] for a in listed["appointments"]] == [mine["id"]]


async def test_the_sixth_failed_try_on_one_reference_within_an_hour_is_refused(
    services: Services, db: Database
) -> None:
    client = services.clients["booking"]
    salon = await _salon(db)
    day = next_weekday(2)
    target = await _book(client, salon, at(day, 10))
    neighbour = await _book(client, salon, at(day, 11))
    guess = {"reference": target["reference"], "customer_name": "Falscher Name"}
    for attempt in range(5):  # five different calls
        answer = await _anonymous(client, salon, "cancel_appointment", guess)
        assert answer["message"] == speech.not_identified(), (attempt, answer)
    right = {"reference": target["reference"], "customer_name": NAME}
    refused = await _anonymous(client, salon, "cancel_appointment", right)
    assert refused["status"] == "not_found"
    assert refused["reason"] == "too_many_attempts"
    assert (await snapshot(db, salon, target["id"])).appointment.status == "confirmed"
    # Only that reference is locked: another one of the company still answers.
    other = await _anonymous(
        client,
        salon,
        "list_appointments",
        {"reference": neighbour["reference"], "customer_name": NAME},
    )
    assert [a["appointment_id"] for a in other["appointments"]] == [neighbour["id"]]
    # A caller with caller ID is not affected by the lock on the reference.
    own = await call_function(
        client, salon, "list_appointments", {"reference": target["reference"]}, caller=OTHER_PHONE
    )
    assert [a["appointment_id"] for a in own.json()["appointments"]] == [target["id"]]


async def test_a_caller_naming_another_number_sees_only_their_own(
    services: Services, db: Database
) -> None:
    client = services.clients["booking"]
    salon = await _salon(db)
    day = next_weekday(3)
    mine = await _book(client, salon, at(day, 9), phone=CALLER, name="Anrufer")
    foreign = await _book(client, salon, at(day, 10), staff=1)
    listed = await call_function(
        client, salon, "list_appointments", {"customer_phone": OTHER_PHONE}
    )
    assert [a["appointment_id"] for a in listed.json()["appointments"]] == [mine["id"]]
    # Another caller's reference does not reach their appointment either.
    by_reference = await call_function(
        client,
        salon,
        "cancel_appointment",
        {"reference": foreign["reference"], "customer_name": NAME, "customer_phone": OTHER_PHONE},
    )
    assert by_reference.json()["status"] == "not_found"
    assert (await snapshot(db, salon, foreign["id"])).appointment.status == "confirmed"
    own = await call_function(
        client, salon, "cancel_appointment", {"reference": mine["reference"].lower()}
    )
    assert own.json()["status"] == "cancelled"
    assert own.json()["appointment_id"] == mine["id"]


async def _customer(db: Database, salon: Salon, phone: str) -> tuple[str, str | None]:
    async with db.transaction(salon.tenant.company_id, write=False) as session:
        row = (await session.execute(select(Customer).where(Customer.phone == phone))).scalar_one()
        return row.name, row.email


async def test_booking_for_someone_else_keeps_their_name_and_email(
    services: Services, db: Database
) -> None:
    client = services.clients["booking"]
    salon = await _salon(db)
    day = next_weekday(4)
    await _book(client, salon, at(day, 9))
    assert await _customer(db, salon, OTHER_PHONE) == (NAME, "juergen@example.com")
    args = {
        "service": "Herrenhaarschnitt",
        "date": day.isoformat(),
        "customer_name": "Mallory",
        "customer_phone": OTHER_PHONE,
        "customer_email": "mallory@example.com",
        "staff": "Anna",
    }
    for time, caller in (("10:00", CALLER), ("11:00", None)):
        answer = await call_function(
            client, salon, "book_appointment", {**args, "time": time}, caller=caller
        )
        assert answer.json()["status"] == "booked", answer.text
    rest = await client.post(
        "/v1/appointments",
        json={
            "service_id": salon.service_id,
            "staff_id": salon.staff_ids[1],
            "start": at(day, 12),
            "customer": {"name": "Mallory", "phone": OTHER_PHONE, "email": "m@example.com"},
        },
        headers=salon.headers,
    )
    assert rest.status_code == 201, rest.text
    assert await _customer(db, salon, OTHER_PHONE) == (NAME, "juergen@example.com")
    # The customer's own call may change them.
    own = await call_function(
        client,
        salon,
        "book_appointment",
        {**args, "time": "14:00", "customer_name": "Jürgen Müller", "customer_email": "j@x.de"},
        caller=OTHER_PHONE,
    )
    assert own.json()["status"] == "booked", own.text
    assert await _customer(db, salon, OTHER_PHONE) == ("Jürgen Müller", "j@x.de")


async def test_the_per_number_limit_counts_a_number_given_in_the_args(
    services: Services, db: Database
) -> None:
    client = services.clients["booking"]
    salon = await _salon(db)
    app = services.apps["booking"]
    saved = app.state.rate_limits
    app.state.rate_limits = RateLimits(per_key_per_minute=1000, per_number_per_minute=3)
    args = {"reference": "K7M2P9", "customer_name": NAME, "customer_phone": OTHER_PHONE}
    try:
        codes = [
            (await call_function(client, salon, "list_appointments", args, caller=None))
            for _ in range(4)
        ]
        other = await call_function(
            client,
            salon,
            "list_appointments",
            {**args, "customer_phone": "+491609999999"},
            caller=None,
        )
    finally:
        app.state.rate_limits = saved
    assert [r.status_code for r in codes] == [200, 200, 200, 429]
    assert "Moment" in codes[-1].json()["message"]
    assert other.status_code == 200
