"""Fixtures for the outbound Cal.com sync: a fake Cal.com, salons wired to it, job runners.

Every test makes its own company with its own Cal.com event type at the fake, so bookings and
counters of one test never meet another's. The fake is reset before each test.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from arq import Worker, func
from arq.connections import ArqRedis, create_pool
from sqlalchemy import select, update

from services.booking.jobs import SYNC_MAX_TRIES, sync_appointment
from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.jobs.queue import BOOKING_QUEUE, redis_settings
from shared.models import Appointment, Company, OutboxEvent, Service
from shared.redis.circuit_breaker import CircuitBreaker
from shared.security.outbound import outbound_client
from tests.conftest import Services
from tests.support.factories import Salon, create_salon, next_weekday
from tests.support.fake_calcom import FakeCalcom

BERLIN = ZoneInfo("Europe/Berlin")
API_KEY = "cal_live_test_0123456789abcdef"
CALLER = "+491701234567"
_event_type_ids = itertools.count(7001)
# The Cal.com client a worker creates at startup; shared by the jobs these tests run directly.
_http: list[httpx.AsyncClient] = []


@dataclass(frozen=True)
class CalSalon:
    """A salon whose company has Cal.com at the fake and whose service maps to an event type."""

    salon: Salon
    event_type_id: int

    @property
    def company_id(self) -> str:
        return self.salon.tenant.company_id

    @property
    def headers(self) -> dict[str, str]:
        return self.salon.headers


@pytest.fixture(scope="session")
async def fake_server() -> AsyncIterator[FakeCalcom]:
    async with FakeCalcom(api_keys=[API_KEY]) as fake:
        yield fake


@pytest.fixture(scope="session", autouse=True)
async def worker_http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with outbound_client(settings, timeout=httpx.Timeout(10.0, connect=3.0)) as client:
        _http.append(client)
        yield client
        _http.remove(client)


@pytest.fixture
def fake(fake_server: FakeCalcom) -> FakeCalcom:
    fake_server.reset()
    return fake_server


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[ArqRedis]:
    """ARQ's Redis connection: what a worker has as ctx["redis"]."""
    redis = await create_pool(redis_settings(settings))
    yield redis
    await redis.aclose()


async def connect_calcom(
    db: Database, salon: Salon, fake: FakeCalcom, *, duration: int, event_type: bool = True
) -> CalSalon:
    """Give the salon's company the Cal.com integration and map its service to a new event type."""
    event_type_id = next(_event_type_ids)
    fake.add_event_type(event_type_id, duration, f"host-{event_type_id}@example.com")
    async with db.transaction(SYSTEM) as session:
        await session.execute(
            update(Company)
            .where(Company.id == salon.tenant.company_id)
            .values(calcom_api_key=API_KEY, calcom_base_url=fake.url)
        )
        if event_type:
            await session.execute(
                update(Service)
                .where(Service.id == salon.service_id)
                .values(calcom_event_type_id=event_type_id)
            )
    return CalSalon(salon, event_type_id)


async def cal_salon(
    db: Database, fake: FakeCalcom, *, duration: int = 30, event_type: bool = True
) -> CalSalon:
    salon = await create_salon(db, buffer_after=0, duration=duration)
    return await connect_calcom(db, salon, fake, duration=duration, event_type=event_type)


def at(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), BERLIN)


def slots(count: int, step_minutes: int, first_day: date | None = None) -> list[datetime]:
    """`count` distinct starts on the salon's working grid (Mon-Sat 9-12:30, 13-18 Berlin)."""
    day = first_day or next_weekday(0)
    found: list[datetime] = []
    while len(found) < count:
        if day.weekday() < 6:
            for first, last in ((at(day, 9), at(day, 12, 30)), (at(day, 13), at(day, 18))):
                start = first
                while start + timedelta(minutes=step_minutes) <= last and len(found) < count:
                    found.append(start)
                    start += timedelta(minutes=step_minutes)
        day += timedelta(days=1)
    return found


async def book(
    services: Services, cal: CalSalon, start: datetime, *, staff: int = 0, phone: str = CALLER
) -> str:
    """Book through the booking API; returns the appointment id (asserts 201)."""
    response = await services.clients["booking"].post(
        "/v1/appointments",
        json={
            "service_id": cal.salon.service_id,
            "staff_id": cal.salon.staff_ids[staff],
            "start": start.isoformat(),
            "customer": {"name": "Max Mustermann", "phone": phone},
        },
        headers=cal.headers,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def sync_rows(
    db: Database, company_id: str, statuses: Iterable[str] | None = None
) -> list[OutboxEvent]:
    """The company's `sync_appointment` outbox rows, oldest first."""
    query = (
        select(OutboxEvent)
        .where(OutboxEvent.company_id == company_id, OutboxEvent.job_name == "sync_appointment")
        .order_by(OutboxEvent.created_at, OutboxEvent.id)
    )
    if statuses is not None:
        query = query.where(OutboxEvent.status.in_(list(statuses)))
    async with db.transaction(SYSTEM, write=False) as session:
        return list((await session.execute(query)).scalars())


async def outbox_rows(db: Database, company_id: str, job: str) -> list[OutboxEvent]:
    async with db.transaction(SYSTEM, write=False) as session:
        rows = await session.execute(
            select(OutboxEvent).where(
                OutboxEvent.company_id == company_id, OutboxEvent.job_name == job
            )
        )
        return list(rows.scalars())


async def appointment(db: Database, appointment_id: str) -> Appointment:
    async with db.transaction(SYSTEM, write=False) as session:
        found = await session.get(Appointment, appointment_id)
    assert found is not None
    return found


def job_ctx(
    db: Database, settings: Settings, pool: ArqRedis, job_try: int = 1, **extra: Any
) -> dict[str, Any]:
    """The context ARQ gives a job (db, settings, http from startup; redis; the try number)."""
    ctx = {"db": db, "settings": settings, "redis": pool, "job_try": job_try, **extra}
    if _http:
        ctx.setdefault("http", _http[0])
    return ctx


async def run_sync(
    db: Database, settings: Settings, pool: ArqRedis, outbox_id: str, job_try: int = 1
) -> str:
    return await sync_appointment(job_ctx(db, settings, pool, job_try), outbox_id)


async def keep_only(pool: ArqRedis, job_ids: Iterable[str]) -> None:
    """Drop every job but ours from the booking queue: the suite shares one Redis database,
    and earlier modules' leftovers (other companies, other fakes) are not this test's work."""
    keep = set(job_ids)
    queued = [raw.decode() for raw in await pool.zrange(BOOKING_QUEUE, 0, -1)]
    foreign = [job for job in queued if job not in keep]
    if foreign:
        await pool.zrem(BOOKING_QUEUE, *foreign)
        await pool.delete(*(f"arq:job:{job}" for job in foreign))


async def burst(db: Database, settings: Settings, max_jobs: int = 10) -> Worker:
    """A real ARQ worker on the booking queue, in burst mode: runs until the queue is empty."""
    worker = Worker(
        functions=[func(sync_appointment, max_tries=SYNC_MAX_TRIES)],
        queue_name=BOOKING_QUEUE,
        redis_settings=redis_settings(settings),
        burst=True,
        poll_delay=0.05,
        max_jobs=max_jobs,
        keep_result=0,
        job_timeout=settings.worker_job_timeout_s,
        ctx={"db": db, "settings": settings, "http": _http[0]},
        handle_signals=False,
    )
    try:
        await worker.main()
    finally:
        await worker.close()
    return worker


async def reset_breaker(pool: ArqRedis, company_id: str) -> None:
    await CircuitBreaker(pool, f"calcom:{company_id}").reset()
