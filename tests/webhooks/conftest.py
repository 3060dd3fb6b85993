"""Fixtures for the webhook worker tests: a salon wired to Cal.com, stored events, the job ctx.

Events are inserted into `webhook_events` as ingestion stores them (status `pending`, the whole
parsed body as payload) and processed by calling the job with an ARQ-like ctx, or by a real
ARQ burst worker. Booking uids are globally UNIQUE, so each test gives the contract payloads
a uid of its own (`with_uid`); everything else stays as Cal.com wrote it.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from arq.connections import ArqRedis, create_pool
from redis.asyncio import Redis

from services.webhooks.jobs import process_webhook_event
from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.jobs.queue import WEBHOOKS_QUEUE, redis_settings
from shared.models import Appointment, Company, OutboxEvent, Service, Staff, WebhookEvent
from tests.support.contracts import CALCOM
from tests.support.factories import Salon, create_salon
from tests.webhooks import AppClient, webhooks_client

CONTRACTS = CALCOM
ORGANIZER = "pro@example.com"
SECOND_HOST = "ben@example.com"


def contract(name: str) -> dict[str, Any]:
    """One of Cal.com's real payloads from `contracts/calcom/` (parsed, untouched)."""
    data: dict[str, Any] = json.loads((CONTRACTS / name).read_text())
    return data


def new_uid() -> str:
    return "t" + uuid.uuid4().hex[:21]


def booking_data(body: dict[str, Any]) -> dict[str, Any]:
    """The booking fields of a payload: inside `payload`, or the body itself (flat)."""
    inner = body.get("payload")
    return inner if isinstance(inner, dict) else body


def with_uid(body: dict[str, Any], uid: str, **fields: Any) -> dict[str, Any]:
    """A copy of `body` with the booking uid (and any other booking fields) replaced."""
    copied = copy.deepcopy(body)
    data = booking_data(copied)
    data["bookingUid" if "bookingUid" in data else "uid"] = uid
    data.update(fields)
    return copied


@dataclass(frozen=True)
class CalcomSalon:
    """A salon whose first staff member is Cal.com organizer `ORGANIZER` (calcom_user_email)
    and whose second is recognised by plain `email` (`SECOND_HOST`); the service is mapped
    to `event_type_id`. Service: 30 min, 10 min buffer after, 28.00 EUR."""

    salon: Salon
    event_type_id: int

    @property
    def company_id(self) -> str:
        return self.salon.tenant.company_id

    @property
    def staff_id(self) -> str:
        return self.salon.staff_ids[0]


async def create_calcom_salon(
    db: Database,
    *,
    event_type_id: int = 7,
    organizer: str = ORGANIZER,
    api_key: str | None = "cal_test_key",
    base_url: str | None = "http://127.0.0.1:9",
) -> CalcomSalon:
    salon = await create_salon(db)
    company_id = salon.tenant.company_id
    async with db.transaction(company_id) as session:
        company = await session.get(Company, company_id)
        assert company is not None
        company.calcom_api_key = api_key
        company.calcom_base_url = base_url
        company.calcom_webhook_secret = "whsec"
        await session.execute(
            sa.update(Service)
            .where(Service.id == salon.service_id)
            .values(calcom_event_type_id=event_type_id)
        )
        await session.execute(
            sa.update(Staff)
            .where(Staff.id == salon.staff_ids[0])
            .values(calcom_user_email=organizer)
        )
        await session.execute(
            sa.update(Staff).where(Staff.id == salon.staff_ids[1]).values(email=SECOND_HOST)
        )
    return CalcomSalon(salon, event_type_id)


async def store_event(db: Database, company_id: str | None, body: dict[str, Any]) -> str:
    """A webhook event as ingestion stores it: pending, payload = the whole body."""
    trigger = str(body.get("triggerEvent"))
    async with db.transaction(SYSTEM) as session:
        event = WebhookEvent(
            company_id=company_id,
            source="calcom",
            event_id=f"test:{uuid.uuid4().hex}",
            event_type=trigger,
            payload=body,
            status="pending",
            attempts=0,
        )
        session.add(event)
    return event.id


async def get_event(db: Database, event_id: str) -> WebhookEvent:
    async with db.transaction(SYSTEM, write=False) as session:
        event = await session.get(WebhookEvent, event_id)
        assert event is not None
        return event


async def deliver(ctx: dict[str, Any], company_id: str, body: dict[str, Any]) -> WebhookEvent:
    """Store one delivery and run the processing job on it; the event row afterwards."""
    event_id = await store_event(ctx["db"], company_id, body)
    await process_webhook_event(ctx, event_id)
    return await get_event(ctx["db"], event_id)


async def appointments(db: Database, company_id: str) -> list[Appointment]:
    async with db.transaction(company_id, write=False) as session:
        rows = await session.execute(
            sa.select(Appointment).order_by(Appointment.created_at, Appointment.id)
        )
        return list(rows.scalars())


async def by_uid(db: Database, company_id: str, uid: str) -> Appointment:
    async with db.transaction(company_id, write=False) as session:
        row = await session.scalar(
            sa.select(Appointment).where(Appointment.calcom_booking_uid == uid)
        )
        assert row is not None, f"no appointment with uid {uid}"
        return row


async def outbox(db: Database, company_id: str) -> list[tuple[str, str]]:
    """(job, event_type) of the company's outbox rows, oldest first."""
    async with db.transaction(SYSTEM, write=False) as session:
        rows = await session.execute(
            sa.select(OutboxEvent.job_name, OutboxEvent.payload)
            .where(OutboxEvent.company_id == company_id)
            .order_by(OutboxEvent.created_at, OutboxEvent.id)
        )
        return [(job, payload.get("event_type")) for job, payload in rows]


def iso(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="session")
async def arq_pool(settings: Settings) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(redis_settings(settings))
    yield pool
    await pool.aclose()


@pytest.fixture
def ctx(db: Database, settings: Settings, arq_pool: ArqRedis) -> dict[str, Any]:
    """The context ARQ gives a job of the webhooks worker (first try)."""
    return {"db": db, "redis": arq_pool, "settings": settings, "job_try": 1}


@pytest.fixture(scope="module")
async def client(settings: Settings) -> AsyncIterator[AppClient]:
    """The webhooks app of a test module (lifespan run), behind httpx."""
    async with webhooks_client(settings) as running:
        yield running


@pytest.fixture(scope="module")
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    assert settings.redis_url
    connection = Redis.from_url(settings.redis_url)
    yield connection
    await connection.aclose()


@pytest.fixture(autouse=True)
async def _drop_new_jobs(redis: Redis) -> AsyncIterator[None]:
    """Leave the queue as found: no later test's burst worker should meet these jobs."""
    before = set(await redis.zrange(WEBHOOKS_QUEUE, 0, -1))
    yield
    for member in set(await redis.zrange(WEBHOOKS_QUEUE, 0, -1)) - before:
        await redis.zrem(WEBHOOKS_QUEUE, member)
        await redis.delete(b"arq:job:" + member)
