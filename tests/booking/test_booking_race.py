"""The fence under real concurrency: 3 server processes on one database, 50 simultaneous
bookings of one staff member per round, 20 rounds: exactly one wins, 49 get slot_taken."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from shared.config import Settings
from shared.db.engine import Database
from shared.models import Appointment
from tests.booking.agent_support import enable_retell, signed
from tests.support.factories import Salon, create_salon, next_weekday
from tests.support.servers import ServerGroup, group_client, post_once

BERLIN = ZoneInfo("Europe/Berlin")
ROUNDS = 20
CLIENTS = 50


@pytest.fixture(scope="module")
async def booking_servers(settings: Settings) -> AsyncIterator[ServerGroup]:
    env = {"DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url or ""}
    async with ServerGroup("services.booking.app:create", 3, env) as group:
        yield group


def start_of(round_no: int, minute_offset: int = 0) -> datetime:
    """A distinct grid time per round: rounds spread over weekdays and hours."""
    first = next_weekday(0, at_least_days=3)
    day = first + timedelta(days=7 * (round_no // 10) + (round_no % 10) // 2)
    hour = 9 + 4 * (round_no % 2)  # 09:xx or 13:xx
    local = datetime(day.year, day.month, day.day, hour, 15, tzinfo=BERLIN)
    return local + timedelta(minutes=minute_offset)


async def _fire(servers: ServerGroup, salon: Salon, starts: list[datetime]) -> Counter[int]:
    async with group_client() as client:

        async def one(i: int, start: datetime) -> int:
            url = servers.urls[i % len(servers.urls)]
            response = await post_once(
                client,
                f"{url}/v1/appointments",
                headers={**salon.headers, "Idempotency-Key": f"race-{uuid.uuid4()}"},
                json={
                    "service_id": salon.service_id,
                    "staff_id": salon.staff_ids[0],
                    "start": start.isoformat(),
                    "customer": {"name": f"Caller {i}", "phone": f"+4917012{i:05d}"},
                },
            )
            if response.status_code == 409:
                assert response.json()["code"] == "slot_taken"
            return response.status_code

        codes = await asyncio.gather(*(one(i, s) for i, s in enumerate(starts)))
    return Counter(codes)


async def _rows(db: Database, salon: Salon, day: date) -> int:
    async with db.transaction(salon.tenant.company_id, write=False) as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(Appointment)
                .where(Appointment.staff_id == salon.staff_ids[0])
            )
            or 0
        )


@pytest.mark.slow
async def test_same_start_50_concurrent_20_rounds(
    booking_servers: ServerGroup, db: Database
) -> None:
    salon = await create_salon(db)
    for round_no in range(ROUNDS):
        start = start_of(round_no)
        codes = await _fire(booking_servers, salon, [start] * CLIENTS)
        assert codes == Counter({201: 1, 409: CLIENTS - 1}), (round_no, codes)
        assert await _rows(db, salon, start.date()) == round_no + 1


@pytest.mark.slow
async def test_overlapping_intervals_50_concurrent_20_rounds(
    booking_servers: ServerGroup, db: Database
) -> None:
    salon = await create_salon(db)
    for round_no in range(ROUNDS):
        # Half ask 10:15-10:45, half 10:30-11:00 (plus buffers): they all overlap pairwise.
        starts = [start_of(round_no, 15 * (i % 2)) for i in range(CLIENTS)]
        codes = await _fire(booking_servers, salon, starts)
        assert codes == Counter({201: 1, 409: CLIENTS - 1}), (round_no, codes)
        assert await _rows(db, salon, starts[0].date()) == round_no + 1


@pytest.mark.slow
async def test_agent_path_50_concurrent_20_rounds(
    booking_servers: ServerGroup, db: Database
) -> None:
    """The same fence through the agent function: 50 callers, one start, 3 processes."""
    salon = await create_salon(db)
    await enable_retell(db, salon)
    async with group_client() as client:
        for round_no in range(ROUNDS):
            start = start_of(round_no)
            local = start.astimezone(BERLIN)

            async def one(i: int, local: datetime = local, round_no: int = round_no) -> str:
                base = booking_servers.urls[i % len(booking_servers.urls)]
                call = {
                    "call_id": f"race_{round_no}_{i}",
                    "to_number": salon.phone_number,
                    "from_number": f"+4917055{i:05d}",
                }
                raw, headers = signed(
                    {
                        "call": call,
                        "name": "book_appointment",
                        "args": {
                            "service": "Herrenhaarschnitt",
                            "staff": "Anna",
                            "date": local.date().isoformat(),
                            "time": local.strftime("%H:%M"),
                            "customer_name": f"Caller {i}",
                        },
                    }
                )
                response = await post_once(
                    client,
                    f"{base}/v1/retell/functions/book_appointment",
                    content=raw,
                    headers=headers,
                )
                assert response.status_code == 200, response.text
                return str(response.json()["status"])

            statuses = Counter(await asyncio.gather(*(one(i) for i in range(CLIENTS))))
            assert statuses == Counter({"booked": 1, "slot_taken": CLIENTS - 1}), (
                round_no,
                statuses,
            )
            assert await _rows(db, salon, start.date()) == round_no + 1
