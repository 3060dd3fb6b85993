"""Idempotency-Key on POST /v1/appointments: same key + same body -> the identical answer,
also under concurrency; same key + another body -> 422; the agent key is a UUID v5."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import func, select

from services.booking.appointments.idempotency import agent_key
from shared.db.engine import Database
from shared.models import Appointment, IdempotencyKey
from tests.booking.test_booking_api import at, body
from tests.support.factories import create_salon, next_weekday


async def _count(db: Database, company_id: str, model: type) -> int:
    async with db.transaction(company_id, write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_20_concurrent_requests_with_one_key(
    booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    payload = body(salon, at(next_weekday(2), 10))
    headers = {**salon.headers, "Idempotency-Key": "order-4711"}
    responses = await asyncio.gather(
        *(booking.post("/v1/appointments", json=payload, headers=headers) for _ in range(20))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.text for r in responses}) == 1  # byte-identical bodies
    assert await _count(db, salon.tenant.company_id, Appointment) == 1
    assert await _count(db, salon.tenant.company_id, IdempotencyKey) == 1
    later = await booking.post("/v1/appointments", json=payload, headers=headers)
    assert later.status_code == 201
    assert later.text == responses[0].text
    assert later.headers["idempotent-replayed"] == "true"


async def test_same_key_other_body_is_422(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    headers = {**salon.headers, "Idempotency-Key": "k-1"}
    first = await booking.post(
        "/v1/appointments", json=body(salon, at(next_weekday(2), 11)), headers=headers
    )
    assert first.status_code == 201
    other = await booking.post(
        "/v1/appointments", json=body(salon, at(next_weekday(2), 14)), headers=headers
    )
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    assert await _count(db, salon.tenant.company_id, Appointment) == 1


async def test_keys_are_per_company(booking: httpx.AsyncClient, db: Database) -> None:
    a = await create_salon(db)
    b = await create_salon(db)
    for salon in (a, b):
        response = await booking.post(
            "/v1/appointments",
            json=body(salon, at(next_weekday(3), 9)),
            headers={**salon.headers, "Idempotency-Key": "shared-key"},
        )
        assert response.status_code == 201
        assert response.json()["company_id"] == salon.tenant.company_id


def test_agent_key_is_uuid5_of_call_function_and_normalized_args() -> None:
    one = agent_key("call_1", "book_appointment", {"service": " Haarschnitt ", "time": "10:00"})
    same = agent_key("call_1", "book_appointment", {"time": "10:00", "service": "haarschnitt"})
    other_call = agent_key("call_2", "book_appointment", {"service": "haarschnitt", "time": "10"})
    assert one == same
    assert one != other_call
    assert one[14] == "5"  # version nibble of a UUID v5
