"""REST booking: create, read, list; refusals are problem+json and write nothing."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import func, select

from shared.db.engine import Database
from shared.models import Appointment, Customer, OutboxEvent
from tests.support.factories import Salon, create_salon, next_weekday

BERLIN = ZoneInfo("Europe/Berlin")


def at(day: date, hh: int, mm: int = 0) -> str:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=BERLIN).isoformat()


def body(salon: Salon, start: str, staff: int | None = 0, phone: str = "+491701234567") -> dict:
    payload = {
        "service_id": salon.service_id,
        "start": start,
        "customer": {"name": "Max Mustermann", "phone": phone},
    }
    if staff is not None:
        payload["staff_id"] = salon.staff_ids[staff]
    return payload


async def count(db: Database, salon: Salon, model: type) -> int:
    query = select(func.count()).select_from(model)
    if model is OutboxEvent:  # not a tenant-filtered table (its company_id may be NULL)
        query = query.where(OutboxEvent.company_id == salon.tenant.company_id)
    async with db.transaction(salon.tenant.company_id, write=False) as session:
        return int(await session.scalar(query) or 0)


async def test_book_read_and_list(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    day = next_weekday(1)
    response = await booking.post(
        "/v1/appointments", json=body(salon, at(day, 10)), headers=salon.headers
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["start"] == at(day, 10)
    assert created["end"] == at(day, 10, 30)
    assert created["staff_id"] == salon.staff_ids[0]
    assert created["status"] == "confirmed"
    assert created["sync_status"] == "local_only"
    assert created["source"] == "api"
    assert created["price"] == "28.00"
    fetched = await booking.get(f"/v1/appointments/{created['id']}", headers=salon.headers)
    assert fetched.json() == created
    listed = await booking.get(
        "/v1/appointments", params={"phone": "0170 1234567"}, headers=salon.headers
    )
    assert [item["id"] for item in listed.json()["items"]] == [created["id"]]
    assert await count(db, salon, OutboxEvent) == 2  # sync_appointment + notify


async def test_taken_slot_is_409_with_alternatives(
    booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    day = next_weekday(1)
    first = await booking.post(
        "/v1/appointments", json=body(salon, at(day, 10)), headers=salon.headers
    )
    assert first.status_code == 201
    # 10:15-10:45 overlaps 10:00-10:30 (+10 min buffer) of the same staff member.
    clash = await booking.post(
        "/v1/appointments",
        json=body(salon, at(day, 10, 15), phone="+491709999999"),
        headers=salon.headers,
    )
    assert clash.status_code == 409
    problem = clash.json()
    assert problem["code"] == "slot_taken"
    assert [a["start"] for a in problem["alternatives"]] == [
        at(day, 10, 45),  # 30 min away
        at(day, 11),  # 45 min away
        at(day, 9, 15),  # 60 min away; 9:30 would end with its buffer inside 10:00
    ]
    assert await count(db, salon, Appointment) == 1
    assert await count(db, salon, Customer) == 1


async def test_any_staff_takes_the_free_one(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    day = next_weekday(2)
    first = await booking.post(
        "/v1/appointments", json=body(salon, at(day, 11), staff=None), headers=salon.headers
    )
    second = await booking.post(
        "/v1/appointments",
        json=body(salon, at(day, 11), staff=None, phone="+491705555555"),
        headers=salon.headers,
    )
    third = await booking.post(
        "/v1/appointments",
        json=body(salon, at(day, 11), staff=None, phone="+491706666666"),
        headers=salon.headers,
    )
    assert (first.status_code, second.status_code, third.status_code) == (201, 201, 409)
    assert {first.json()["staff_id"], second.json()["staff_id"]} == set(salon.staff_ids)


async def test_duplicate_booking_returns_the_existing_one(
    booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    day = next_weekday(3)
    first = await booking.post(
        "/v1/appointments", json=body(salon, at(day, 14)), headers=salon.headers
    )
    again = await booking.post(
        "/v1/appointments", json=body(salon, at(day, 14)), headers=salon.headers
    )
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert await count(db, salon, Appointment) == 1


async def test_invalid_requests_write_nothing(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    day = next_weekday(1)
    sunday = next_weekday(6)
    cases = [
        ({**body(salon, at(day, 10)), "service_id": "nope"}, "service_id"),
        ({**body(salon, at(day, 10)), "staff_id": "nope"}, "staff_id"),
        (body(salon, at(day, 12, 45)), "start"),  # in the break
        (body(salon, at(sunday, 10)), "start"),  # closed
        (body(salon, at(day, 10, 5)), "start"),  # off the 15-minute grid
        (body(salon, "2020-01-01T10:00:00+01:00"), "start"),  # past
        (body(salon, at(next_weekday(1, 70), 10)), "start"),  # beyond 60 days
        (body(salon, "2026-13-01T10:00"), "start"),  # malformed
        (body(salon, "2026-12-01T10:00:00"), "start"),  # no offset
        ({**body(salon, at(day, 10)), "customer": {"phone": "+491701234567"}}, "customer.name"),
        (body(salon, at(day, 10), phone="12"), "customer.phone"),
    ]
    for payload, field in cases:
        response = await booking.post("/v1/appointments", json=payload, headers=salon.headers)
        assert response.status_code == 422, (field, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["field"] == field, response.json()
    assert await count(db, salon, Appointment) == 0
    assert await count(db, salon, Customer) == 0


async def test_availability_lists_free_slots(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    day = next_weekday(1)
    await booking.post("/v1/appointments", json=body(salon, at(day, 9)), headers=salon.headers)
    response = await booking.get(
        "/v1/availability",
        params={
            "service_id": salon.service_id,
            "date": day.isoformat(),
            "staff_id": salon.staff_ids[0],
        },
        headers=salon.headers,
    )
    assert response.status_code == 200, response.text
    starts = [slot["start"] for slot in response.json()["slots"]]
    assert starts[:3] == [at(day, 9, 45), at(day, 10), at(day, 10, 15)]
    assert at(day, 12) in starts and at(day, 12, 15) not in starts  # 12:15+30 > 12:30
    assert starts[-1] == at(day, 17, 30)
