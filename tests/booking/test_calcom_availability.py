"""Availability and booking that also respect Cal.com's free slots, with the local calendar as
the fallback whenever Cal.com cannot answer in time (the seeds' "bookable while Cal.com is
down"). Cal.com is the fake (`tests.support.fake_calcom`), real HTTP on a local port."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import AsyncIterator
from datetime import date, datetime
from datetime import time as dtime
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from sqlalchemy import select, update

from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.integrations.calcom import slots_cache
from shared.models import ApiCallLog, Company, Service
from shared.redis.circuit_breaker import CircuitBreaker
from tests.booking.agent_support import call_function, enable_retell
from tests.booking.test_booking_api import at, body
from tests.support.factories import Salon, create_salon, next_weekday
from tests.support.fake_calcom import FakeCalcom

SLOTS = "GET /v2/slots"
_event_type_ids = itertools.count(random.randint(10_000, 900_000))


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeCalcom]:
    async with FakeCalcom() as running:
        yield running


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, socket_timeout=2)
    yield client
    await client.aclose()


async def connect_calcom(
    db: Database, salon: Salon, fake: FakeCalcom, *, api_key: str | None = "cal_live_test"
) -> int:
    """Give the salon's company Cal.com and map its service to a new event type of the fake
    that is open 10:00-12:00 Berlin time every day (30-minute slots)."""
    event_type_id = next(_event_type_ids)
    host = f"host{event_type_id}@salon.example"  # the fake's hosts are busy across types
    fake.add_event_type(
        event_type_id, 30, host, time_zone="Europe/Berlin", hours=(dtime(10), dtime(12))
    )
    async with db.transaction(SYSTEM) as session:
        await session.execute(
            update(Company)
            .where(Company.id == salon.tenant.company_id)
            .values(calcom_api_key=api_key, calcom_base_url=fake.url)
        )
        await session.execute(
            update(Service)
            .where(Service.id == salon.service_id)
            .values(calcom_event_type_id=event_type_id)
        )
    return event_type_id


async def starts(booking: httpx.AsyncClient, salon: Salon, day: date) -> list[str]:
    response = await booking.get(
        "/v1/availability",
        params={"service_id": salon.service_id, "date": day.isoformat()},
        headers=salon.headers,
    )
    assert response.status_code == 200, response.text
    return [slot["start"] for slot in response.json()["slots"]]


def local_day(day: date) -> list[str]:
    """Every start of the salon's day without Cal.com: 09:00-12:00 and 13:00-17:30 by 15 min."""
    morning = [at(day, 9 + q // 4, q % 4 * 15) for q in range(13)]
    afternoon = [at(day, 13 + q // 4, q % 4 * 15) for q in range(19)]
    return morning + afternoon


def fallbacks(reason: str) -> float:
    value = REGISTRY.get_sample_value("calcom_availability_fallback_total", {"reason": reason})
    return value or 0.0


def all_fallbacks() -> float:
    reasons = ("circuit_open", "timeout", "unavailable", "rejected", "invalid_answer", "error")
    return sum(fallbacks(r) for r in reasons)


def slot_calls(fake: FakeCalcom) -> int:
    with fake.state.lock:
        return fake.state.calls[SLOTS]


async def logged_slot_calls(db: Database, salon: Salon, expected: int) -> list[int | None]:
    """Statuses of the company's logged /v2/slots calls, once `expected` are there (the log is
    written in the background, after the request's own transaction let go of SQLite's lock)."""
    statuses: list[int | None] = []
    for _ in range(100):
        async with db.transaction(SYSTEM, write=False) as session:
            rows = await session.execute(
                select(ApiCallLog.response_status).where(
                    ApiCallLog.company_id == salon.tenant.company_id,
                    ApiCallLog.endpoint == "/v2/slots",
                )
            )
            statuses = [status for (status,) in rows]
        if len(statuses) >= expected:
            break
        await asyncio.sleep(0.05)
    return statuses


def berlin(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.fromisoformat(at(day, hh, mm))


async def test_free_slots_are_those_calcom_also_lists_cached_until_invalidated(
    booking: httpx.AsyncClient, db: Database, fake: FakeCalcom, redis: Redis
) -> None:
    salon = await create_salon(db)
    event_type_id = await connect_calcom(db, salon, fake)
    day = next_weekday(2)
    walk_in = fake.book(event_type_id, berlin(day, 10, 30))  # booked in Cal.com itself
    before = slot_calls(fake)

    assert await starts(booking, salon, day) == [at(day, 10), at(day, 11), at(day, 11, 30)]
    assert slot_calls(fake) == before + 1
    # The same question within the TTL: Redis answers, Cal.com is not asked.
    assert await starts(booking, salon, day) == [at(day, 10), at(day, 11), at(day, 11, 30)]
    assert slot_calls(fake) == before + 1

    # A webhook (here: its effect) frees 10:30 and invalidates: the next query asks again.
    fake.cancel(walk_in["uid"])
    await slots_cache.invalidate(redis, salon.tenant.company_id, event_type_id)
    expected = [at(day, 10), at(day, 10, 30), at(day, 11), at(day, 11, 30)]
    assert await starts(booking, salon, day) == expected
    assert slot_calls(fake) == before + 2
    assert await starts(booking, salon, day) == expected
    assert slot_calls(fake) == before + 2
    # An event naming no known event type stales all of the company's slots.
    await slots_cache.invalidate(redis, salon.tenant.company_id, None)
    assert await starts(booking, salon, day) == expected
    assert slot_calls(fake) == before + 3
    assert fake.state.violations == []


async def test_slow_calcom_answers_from_the_local_calendar_and_is_not_cached(
    booking: httpx.AsyncClient, db: Database, fake: FakeCalcom
) -> None:
    salon = await create_salon(db)
    event_type_id = await connect_calcom(db, salon, fake)
    day = next_weekday(3)
    timeouts = fallbacks("timeout")
    fake.control(slow_s=3, times=1, match=f"{SLOTS}")
    started = time.perf_counter()
    offered = await starts(booking, salon, day)
    elapsed = time.perf_counter() - started
    assert offered == local_day(day)
    assert elapsed < 2.5, elapsed
    assert fallbacks("timeout") == timeouts + 1
    # The fallback was not stored as Cal.com's answer: the next query asks Cal.com.
    before = slot_calls(fake)
    assert await starts(booking, salon, day) == [
        at(day, 10),
        at(day, 10, 30),
        at(day, 11),
        at(day, 11, 30),
    ]
    assert slot_calls(fake) == before + 1
    assert event_type_id in fake.state.event_types


async def test_calcom_down_then_breaker_open_still_offers_and_books_locally(
    booking: httpx.AsyncClient, db: Database, fake: FakeCalcom, redis: Redis
) -> None:
    salon = await create_salon(db)
    event_type_id = await connect_calcom(db, salon, fake)
    day = next_weekday(4)
    unavailable, circuit_open = fallbacks("unavailable"), fallbacks("circuit_open")
    refused = fake.state.refused
    fake.control(down=True, match=SLOTS)
    try:
        for _ in range(5):  # five failures within 60 s open the company's breaker
            assert await starts(booking, salon, day) == local_day(day)
        assert fallbacks("unavailable") == unavailable + 5
        assert fake.state.refused == refused + 5
        # Open: nobody waits for Cal.com any more, and it is not even asked.
        assert await starts(booking, salon, day) == local_day(day)
        assert fallbacks("circuit_open") == circuit_open + 1
        assert fake.state.refused == refused + 5
        # 09:00 is outside the event type's hours, but Cal.com cannot say so now: booked
        # locally, synced later through the outbox.
        response = await booking.post(
            "/v1/appointments", json=body(salon, at(day, 9)), headers=salon.headers
        )
        assert response.status_code == 201, response.text
        assert response.json()["sync_status"] == "pending"
        assert fallbacks("circuit_open") == circuit_open + 2
    finally:
        fake.control(down=None)
    # Cal.com back (breaker closed by the operator): its answer counts again.
    await CircuitBreaker(redis, f"calcom:{salon.tenant.company_id}").reset()
    assert await starts(booking, salon, day) == [
        at(day, 10),
        at(day, 10, 30),
        at(day, 11),
        at(day, 11, 30),
    ]
    assert event_type_id in fake.state.event_types


async def test_booking_a_slot_calcom_does_not_list_is_slot_taken(
    booking: httpx.AsyncClient, db: Database, fake: FakeCalcom, redis: Redis
) -> None:
    salon = await create_salon(db)
    event_type_id = await connect_calcom(db, salon, fake)
    day = next_weekday(1)
    for staff in (0, None):  # a given staff member, and "any staff"
        refused = await booking.post(
            "/v1/appointments", json=body(salon, at(day, 9), staff=staff), headers=salon.headers
        )
        assert refused.status_code == 409, refused.text
        problem = refused.json()
        assert problem["code"] == "slot_taken"
        assert [a["start"] for a in problem["alternatives"]] == [
            at(day, 10),
            at(day, 10, 30),
            at(day, 11),
        ]
    # Asked once for the day, once for the week of alternatives; both logged, although the
    # booking held SQLite's write lock while it asked.
    assert await logged_slot_calls(db, salon, 2) == [200, 200]

    created = await booking.post(
        "/v1/appointments", json=body(salon, at(day, 10)), headers=salon.headers
    )
    assert created.status_code == 201, created.text
    # Synced: Cal.com no longer lists 10:00. The same request again still finds our own
    # booking (200), it is not refused because of itself.
    fake.book(event_type_id, berlin(day, 10), metadata={"appointment_id": created.json()["id"]})
    await slots_cache.invalidate(redis, salon.tenant.company_id, event_type_id)
    again = await booking.post(
        "/v1/appointments", json=body(salon, at(day, 10)), headers=salon.headers
    )
    assert again.status_code == 200, again.text
    assert again.json()["id"] == created.json()["id"]


async def test_agent_check_availability_respects_calcom(
    booking: httpx.AsyncClient, db: Database, fake: FakeCalcom
) -> None:
    salon = await create_salon(db)
    await enable_retell(db, salon)
    event_type_id = await connect_calcom(db, salon, fake)
    day = next_weekday(2)
    fake.book(event_type_id, berlin(day, 11))
    response = await call_function(
        booking, salon, "check_availability", {"service": "Herrenhaarschnitt", "date": str(day)}
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert answer["status"] == "available"
    assert [s["start"] for s in answer["slots"]] == [at(day, 10), at(day, 10, 30), at(day, 11, 30)]


async def test_company_without_calcom_never_asks_it(
    booking: httpx.AsyncClient, db: Database, fake: FakeCalcom
) -> None:
    salon = await create_salon(db)
    # The service is mapped and a base URL is known, but the company has no Cal.com key.
    await connect_calcom(db, salon, fake, api_key=None)
    day = next_weekday(3)
    before, degraded = slot_calls(fake), all_fallbacks()
    assert await starts(booking, salon, day) == local_day(day)
    response = await booking.post(
        "/v1/appointments", json=body(salon, at(day, 9)), headers=salon.headers
    )
    assert response.status_code == 201, response.text
    assert response.json()["sync_status"] == "local_only"
    assert slot_calls(fake) == before
    assert all_fallbacks() == degraded  # not even a failed attempt
