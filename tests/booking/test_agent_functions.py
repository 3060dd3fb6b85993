"""The agent's functions end to end: signed like Retell, tenant from the called number,
answers in German, refusals write nothing, retries never book twice."""

from __future__ import annotations

import asyncio
import json

import httpx
from sqlalchemy import func, select

from shared.db.engine import Database
from shared.integrations.retell import signature as retell
from shared.models import Appointment, CallbackRequest, Customer
from tests.booking.agent_support import CALLER, call_function, enable_retell, signed
from tests.booking.test_booking_api import at
from tests.conftest import Services
from tests.support.factories import Salon, create_salon, next_weekday


async def _salon(db: Database) -> Salon:
    salon = await create_salon(db)
    await enable_retell(db, salon)
    return salon


async def _count(db: Database, salon: Salon, model: type) -> int:
    async with db.transaction(salon.tenant.company_id, write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_check_availability_by_spoken_service_name(
    booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await _salon(db)
    day = next_weekday(1)
    response = await call_function(
        booking,
        salon,
        "check_availability",
        {"service": "herren haarschnit", "date": day.isoformat()},
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == "available"
    assert [s["start"] for s in answer["slots"]] == [
        at(day, 9),
        at(day, 9, 15),
        at(day, 9, 30),
        at(day, 9, 45),
        at(day, 10),
    ]
    assert answer["slots"][0]["staff"] == "Anna"
    assert "Herrenhaarschnitt" in answer["message"]
    assert "9:00 Uhr" in answer["message"] or "09:00 Uhr" in answer["message"]


async def test_book_then_a_retry_of_the_same_call_books_once(
    booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await _salon(db)
    day = next_weekday(2)
    args = {
        "service": "Herrenhaarschnitt",
        "date": day.isoformat(),
        "time": "10:00",
        "customer_name": "Max Mustermann",
        "staff": "anna",
    }
    first = await call_function(booking, salon, "book_appointment", args, call_id="call_retry_1")
    assert first.status_code == 200
    assert first.json()["status"] == "booked", first.text
    assert first.json()["start"] == at(day, 10)
    assert first.json()["staff"] == "Anna"
    retries = await asyncio.gather(
        *(
            call_function(booking, salon, "book_appointment", args, call_id="call_retry_1")
            for _ in range(5)
        )
    )
    assert {r.json()["appointment_id"] for r in retries} == {first.json()["appointment_id"]}
    assert await _count(db, salon, Appointment) == 1
    async with db.transaction(salon.tenant.company_id, write=False) as session:
        customer = (await session.execute(select(Customer))).scalar_one()
    assert (customer.phone, customer.name) == (CALLER, "Max Mustermann")


async def test_taken_slot_offers_alternatives(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await _salon(db)
    day = next_weekday(3)
    args = {
        "service": "Herrenhaarschnitt",
        "date": day.isoformat(),
        "time": "11:00",
        "customer_name": "A",
        "staff": "Anna",
    }
    assert (await call_function(booking, salon, "book_appointment", args)).json()[
        "status"
    ] == "booked"
    taken = await call_function(
        booking, salon, "book_appointment", {**args, "customer_name": "B"}, caller="+491709876543"
    )
    answer = taken.json()
    assert answer["status"] == "slot_taken"
    # Anna is busy 11:00-11:40 (10 min buffer): 10:15 and 11:45 are 45 min away (the earlier
    # first), 10:00 is 60 min away; 10:30 would end with its buffer inside 11:00.
    assert [a["start"] for a in answer["alternatives"]] == [
        at(day, 10, 15),
        at(day, 11, 45),
        at(day, 10),
    ]
    assert "leider" in answer["message"]
    assert await _count(db, salon, Appointment) == 1


async def test_invalid_requests_answer_200_and_write_nothing(
    booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await _salon(db)
    day = next_weekday(1)
    base = {
        "service": "Herrenhaarschnitt",
        "date": day.isoformat(),
        "time": "10:00",
        "customer_name": "Max",
    }
    cases = [
        {**base, "service": "Zahnreinigung"},
        {**base, "staff": "Zacharias"},
        {**base, "date": "2020-01-01"},
        {**base, "date": "morgen früh"},
        {**base, "time": "25:99"},
        {**base, "time": "12:45"},  # break
        {**base, "date": next_weekday(1, 80).isoformat()},  # beyond the window
        {k: v for k, v in base.items() if k != "customer_name"},
    ]
    for args in cases:
        response = await call_function(booking, salon, "book_appointment", args)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["status"] == "invalid_request", (args, answer)
        assert answer["message"] and answer["message"].endswith(("?", ".")), answer
    assert await _count(db, salon, Appointment) == 0
    assert await _count(db, salon, Customer) == 0


async def test_list_only_the_callers_own_appointments(
    booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await _salon(db)
    day = next_weekday(4)
    for caller, time in ((CALLER, "09:00"), ("+491709876543", "10:00")):
        response = await call_function(
            booking,
            salon,
            "book_appointment",
            {
                "service": "Herrenhaarschnitt",
                "date": day.isoformat(),
                "time": time,
                "customer_name": "X",
                "staff": "Anna",
            },
            caller=caller,
        )
        assert response.json()["status"] == "booked"
    mine = await call_function(booking, salon, "list_appointments", {})
    items = mine.json()["appointments"]
    assert [i["start"] for i in items] == [at(day, 9)]
    # Naming someone else's number does not reveal their appointments.
    other = await call_function(
        booking, salon, "list_appointments", {"customer_phone": "+491709876543"}
    )
    assert [i["start"] for i in other.json()["appointments"]] == [at(day, 9)]


async def test_request_callback(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await _salon(db)
    response = await call_function(
        booking,
        salon,
        "request_callback",
        {"reason": "Frage zur Färbung", "customer_name": "Eva", "preferred_time": "nachmittags"},
        call_id="call_cb",
    )
    assert response.json()["status"] == "created", response.text
    again = await call_function(
        booking,
        salon,
        "request_callback",
        {"reason": "Frage zur Färbung", "customer_name": "Eva", "preferred_time": "nachmittags"},
        call_id="call_cb",
    )
    assert again.json() == response.json()
    assert await _count(db, salon, CallbackRequest) == 1


async def test_signature_is_checked_first(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await _salon(db)
    body = {
        "call": {"call_id": "c1", "to_number": salon.phone_number, "from_number": CALLER},
        "name": "book_appointment",
        "args": {
            "service": "Herrenhaarschnitt",
            "date": next_weekday(1).isoformat(),
            "time": "10:00",
            "customer_name": "M",
        },
    }
    raw, headers = signed(body)
    tampered = raw.replace(b"10:00", b"10:15")
    stale_raw, stale = signed(body, ts=retell.now_ms() - 300_001)
    _, wrong_key = signed(body, key="key_other")
    for content, hdrs in (
        (tampered, headers),
        (stale_raw, stale),
        (raw, wrong_key),
        (raw, {"X-Retell-Signature": "v=1,d=zz"}),
        (raw, {}),
    ):
        response = await booking.post(
            "/v1/retell/functions/book_appointment", content=content, headers=hdrs
        )
        assert response.status_code == 401, response.text
    assert await _count(db, salon, Appointment) == 0


async def test_unknown_called_number_is_404_whoever_signed(
    services: Services, db: Database
) -> None:
    """A number no company has is `retell_number_unknown` (docs/adr/0022), with or without a
    platform key that verifies the signature: it was a 401 "Invalid or stale Retell
    signature" (no key to check) or a 200 refusal (platform key) before."""
    booking = services.clients["booking"]
    await _salon(db)
    body = {"call": {"call_id": "c2", "to_number": "+4989123456"}, "name": "x", "args": {}}
    raw, headers = signed(body, key="key_platform_account")
    url = "/v1/retell/functions/check_availability"
    unverifiable = await booking.post(url, content=raw, headers=headers)
    app_settings = services.apps["booking"].state.settings
    services.apps["booking"].state.settings = app_settings.model_copy(
        update={"retell_api_key": "key_platform_account"}
    )
    try:
        platform_signed = await booking.post(url, content=raw, headers=headers)
    finally:
        services.apps["booking"].state.settings = app_settings
    for response in (unverifiable, platform_signed):
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "retell_number_unknown"
        assert response.json()["to_number"] == "+4989123456"
        assert "+4989123456" in response.json()["detail"]


async def test_inbound_call_greets_a_known_caller(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await _salon(db)
    day = next_weekday(2)
    await call_function(
        booking,
        salon,
        "book_appointment",
        {
            "service": "Herrenhaarschnitt",
            "date": day.isoformat(),
            "time": "14:00",
            "customer_name": "Erika Musterfrau",
            "staff": "Ben",
        },
    )
    event = {
        "event": "call_inbound",
        "event_timestamp": retell.now_ms(),
        "call_inbound": {"agent_id": "a", "from_number": CALLER, "to_number": salon.phone_number},
    }
    raw, headers = signed(event)
    response = await booking.post("/v1/retell/inbound", content=raw, headers=headers)
    assert response.status_code == 200, response.text
    variables = response.json()["call_inbound"]["dynamic_variables"]
    assert variables["customer_name"] == "Erika Musterfrau"
    assert variables["branch_name"] == "Mitte"
    assert variables["customer_known"] == "true"
    assert variables["next_appointment"].startswith("Herrenhaarschnitt am ")
    assert all(isinstance(v, str) for v in variables.values())
    unknown = {**event, "call_inbound": {**event["call_inbound"], "from_number": "+491600000000"}}
    raw, headers = signed(unknown)
    answer = (await booking.post("/v1/retell/inbound", content=raw, headers=headers)).json()
    assert answer["call_inbound"]["dynamic_variables"]["customer_known"] == "false"
    assert json.dumps(answer)
