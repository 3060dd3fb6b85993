"""Notification test rig: a real SMTP server, a fake SMS gateway, the notify job's context."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from redis.asyncio import Redis

from services.notifications.channels.registry import adapters_from_settings
from services.notifications.configs.queries import NAMESPACE
from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.hierarchy.cache import ConfigCache
from shared.jobs.queue import NOTIFY_QUEUE
from shared.models import OutboxEvent
from shared.redis.connection import redis_client
from tests.support.fake_messaging import FakeMessagingProvider
from tests.support.smtp_server import SmtpTestServer


@pytest.fixture(scope="session")
def smtp() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


@pytest.fixture(scope="session")
def sms_gateway() -> Iterator[FakeMessagingProvider]:
    with FakeMessagingProvider(token="sms-token") as provider:
        yield provider


@pytest.fixture
def channel_settings(
    settings: Settings, smtp: SmtpTestServer, sms_gateway: FakeMessagingProvider
) -> Settings:
    return settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port,
            "smtp_timeout_s": 3.0,
            "sms_provider_url": sms_gateway.url,
            "sms_provider_token": "sms-token",
            "messaging_timeout_s": 3.0,
        }
    )


@pytest.fixture
async def notify_redis(settings: Settings) -> AsyncIterator[Redis]:
    client = redis_client(settings=settings)
    yield client
    await client.aclose()


@pytest.fixture
async def ctx(
    db: Database,
    channel_settings: Settings,
    notify_redis: Redis,
    smtp: SmtpTestServer,
    sms_gateway: FakeMessagingProvider,
) -> AsyncIterator[dict[str, Any]]:
    """The notify job's context, as the worker's startup builds it."""
    smtp.reset_switches()
    smtp.clear()
    sms_gateway.clear()
    async with httpx.AsyncClient() as http:
        yield {
            "db": db,
            "settings": channel_settings,
            "adapters": adapters_from_settings(channel_settings, http),
            "notification_cache": ConfigCache(notify_redis, NAMESPACE),
            "job_try": 1,
        }


async def notify_rows(db: Database, aggregate_id: str) -> list[OutboxEvent]:
    """The `notify` outbox rows of one appointment or callback, oldest first."""
    async with db.transaction(SYSTEM, write=False) as session:
        rows = await session.scalars(
            sa.select(OutboxEvent)
            .where(OutboxEvent.aggregate_id == aggregate_id, OutboxEvent.queue == NOTIFY_QUEUE)
            .order_by(OutboxEvent.created_at, OutboxEvent.id)
        )
        return list(rows)
