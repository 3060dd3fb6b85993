"""Which branches a service is booked and searched in, read once with the service (the
offer): refusals name the field, another company's rows are unknown, any staff chooses the
free member."""

from __future__ import annotations

import httpx
from sqlalchemy import update

from shared.db.engine import Database
from shared.models import Branch, Service
from tests.booking.test_booking_api import at, body
from tests.support.factories import create_salon, next_weekday


async def _refused_on(booking: httpx.AsyncClient, headers: dict, payload: dict) -> str:
    response = await booking.post("/v1/appointments", json=payload, headers=headers)
    assert response.status_code == 422, response.text
    return str(response.json()["field"])


async def test_any_staff_refusals_name_the_field(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    other = await create_salon(db)
    start = at(next_weekday(2), 10)
    anyone = body(salon, start, staff=None)
    unknown_service = {**anyone, "service_id": other.service_id}
    assert await _refused_on(booking, salon.headers, unknown_service) == "service_id"
    foreign_branch = {**anyone, "branch_id": other.branch_id}
    assert await _refused_on(booking, salon.headers, foreign_branch) == "branch_id"
    # The service belongs to a branch: another (active) branch is refused.
    async with db.transaction(salon.tenant.company_id) as session:
        second = Branch(name="Zweite", timezone="Europe/Berlin")
        session.add(second)
        await session.flush()
        second_id = second.id
        await session.execute(
            update(Service).where(Service.id == salon.service_id).values(branch_id=salon.branch_id)
        )
    assert await _refused_on(booking, salon.headers, {**anyone, "branch_id": second_id}) == (
        "branch_id"
    )
    # An inactive service is unknown.
    async with db.transaction(salon.tenant.company_id) as session:
        await session.execute(
            update(Service).where(Service.id == salon.service_id).values(active=False)
        )
    assert await _refused_on(booking, salon.headers, anyone) == "service_id"


async def test_any_staff_takes_the_free_member_then_offers_alternatives(
    booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    day = next_weekday(3)
    first = await booking.post(
        "/v1/appointments", json=body(salon, at(day, 11), staff=0), headers=salon.headers
    )
    assert first.status_code == 201, first.text
    anyone = body(salon, at(day, 11), staff=None, phone="+491709876543")
    second = await booking.post("/v1/appointments", json=anyone, headers=salon.headers)
    assert second.status_code == 201, second.text
    assert second.json()["staff_id"] == salon.staff_ids[1]
    third = await booking.post(
        "/v1/appointments",
        json=body(salon, at(day, 11), staff=None, phone="+491701112233"),
        headers=salon.headers,
    )
    assert third.status_code == 409, third.text
    alternatives = third.json()["alternatives"]
    assert alternatives and set(alternatives[0]) == {"start", "end", "staff_id"}
