"""Atomic quota enforcement across replicas: with one cancellation left in the customer's
rolling quota, two simultaneous cancellations of two different appointments, sent to two
different booking processes (which ask a separate policy process over HTTP), end with exactly
one applied and the other refused `quota_exceeded`. 20 rounds, a new customer each round."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.jobs.queue import NOTIFY_QUEUE
from shared.models import (
    Appointment,
    AppointmentModification,
    AppointmentModificationStat,
    OutboxEvent,
)
from tests.support.factories import Salon, create_salon
from tests.support.servers import ServerGroup, group_client

BERLIN = ZoneInfo("Europe/Berlin")
ROUNDS = 20
HOURS = (9, 10, 11, 13, 14, 15, 16, 17)  # 8 starts a day, all on Anna's working grid


@pytest.fixture(scope="module")
async def policy_servers(settings: Settings) -> AsyncIterator[ServerGroup]:
    env = {"DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url or ""}
    async with ServerGroup("services.policy.app:create", 1, env) as group:
        yield group


@pytest.fixture(scope="module")
async def booking_servers(
    settings: Settings, policy_servers: ServerGroup
) -> AsyncIterator[ServerGroup]:
    env = {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url or "",
        "POLICY_SERVICE_URL": policy_servers.urls[0],
        "SERVICE_API_KEY": settings.service_api_key or "",
    }
    async with ServerGroup("services.booking.app:create", 2, env) as group:
        yield group


def slots(count: int) -> list[datetime]:
    """`count` distinct starts on working days (Mon-Sat) from 3 days ahead on."""
    result: list[datetime] = []
    day = date.today() + timedelta(days=3)
    while len(result) < count:
        if day.weekday() != 6:
            result.extend(
                datetime(day.year, day.month, day.day, hour, tzinfo=BERLIN) for hour in HOURS
            )
        day += timedelta(days=1)
    return result[:count]


async def _book(
    client: httpx.AsyncClient, url: str, salon: Salon, start: datetime, phone: str
) -> str:
    response = await client.post(
        f"{url}/v1/appointments",
        headers=salon.headers,
        json={
            "service_id": salon.service_id,
            "staff_id": salon.staff_ids[0],
            "start": start.isoformat(),
            "customer": {"name": "Quota Kunde", "phone": phone},
        },
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _customer_state(
    db: Database, salon: Salon, ids: list[str]
) -> tuple[list[str], int, list[int]]:
    async with db.transaction(salon.tenant.company_id, write=False) as session:
        statuses = list(
            await session.scalars(
                select(Appointment.status).where(Appointment.id.in_(ids)).order_by(Appointment.id)
            )
        )
        customer_id = await session.scalar(
            select(Appointment.customer_id).where(Appointment.id == ids[0])
        )
        modifications = list(
            await session.scalars(
                select(AppointmentModification.id).where(
                    AppointmentModification.customer_id == customer_id
                )
            )
        )
        stats = list(
            await session.scalars(
                select(AppointmentModificationStat.count).where(
                    AppointmentModificationStat.customer_id == customer_id,
                    AppointmentModificationStat.stat_type == "cancellation_count",
                )
            )
        )
    return statuses, len(modifications), stats


QUOTA_NOTICE = "modification_quota_exceeded"


async def _notices(db: Database, appointment_id: str) -> list[str]:
    """The event types of the appointment's notify outbox rows, oldest first."""
    async with db.transaction(SYSTEM, write=False) as session:
        rows = await session.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.aggregate_id == appointment_id, OutboxEvent.queue == NOTIFY_QUEUE)
            .order_by(OutboxEvent.created_at, OutboxEvent.id)
        )
        return [row.payload["event_type"] for row in rows]


@pytest.mark.slow
async def test_last_quota_slot_two_replicas_exactly_one_cancel_wins_20_rounds(
    booking_servers: ServerGroup, policy_servers: ServerGroup, db: Database, backend: str
) -> None:
    salon = await create_salon(db)
    began = time.monotonic()
    async with group_client(timeout=30) as client:
        put = await client.put(
            f"{policy_servers.urls[0]}/v1/policies/company/{salon.tenant.company_id}/cancellation",
            json={"max_per_window": 1, "window_days": 30},
            headers=salon.headers,
        )
        assert put.status_code in (200, 201), put.text
        starts = slots(2 * ROUNDS)
        first_url, second_url = booking_servers.urls
        refused_by: Counter[str] = Counter()
        for round_no in range(ROUNDS):
            phone = f"+4917155{round_no:05d}"  # a new customer each round: the quota is theirs
            ids = [
                await _book(client, first_url, salon, starts[2 * round_no], phone),
                await _book(client, second_url, salon, starts[2 * round_no + 1], phone),
            ]
            responses = await asyncio.gather(
                client.post(
                    f"{first_url}/v1/appointments/{ids[0]}/cancel", json={}, headers=salon.headers
                ),
                client.post(
                    f"{second_url}/v1/appointments/{ids[1]}/cancel",
                    json={},
                    headers=salon.headers,
                ),
            )
            codes = Counter(r.status_code for r in responses)
            assert codes == Counter({200: 1, 409: 1}), (round_no, [r.text for r in responses])
            refused = next(r for r in responses if r.status_code == 409).json()
            assert refused["code"] == "policy_violation", refused
            assert refused["reason"] == "quota_exceeded", refused
            assert refused["quota"]["limit"] == 1
            # Which fence refused: the policy's own answer, or booking's recheck under the lock.
            refused_by["policy" if refused["detail"].startswith("Not allowed") else "lock"] += 1
            winner = next(r for r in responses if r.status_code == 200).json()
            assert winner["status"] == "cancelled" and winner["fee"] == "0.00"

            statuses, modifications, stats = await _customer_state(db, salon, ids)
            assert sorted(statuses) == ["cancelled", "confirmed"], (round_no, statuses)
            assert modifications == 1, round_no
            assert stats == [1], round_no
            # The refused customer is told once, by whichever replica (and fence) refused.
            loser = ids[[r.status_code for r in responses].index(409)]
            winner_id = ids[1 - ids.index(loser)]
            assert await _notices(db, loser) == ["booking_confirmed", QUOTA_NOTICE], round_no
            assert await _notices(db, winner_id) == ["booking_confirmed", "booking_cancelled"]
    elapsed = time.monotonic() - began
    print(f"\n[{backend}] {ROUNDS} rounds in {elapsed:.1f} s; refused by {dict(refused_by)}")
    assert elapsed < 60
