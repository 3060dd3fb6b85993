"""ARQ queues: names, connection settings, and enqueueing only after the commit."""

from __future__ import annotations

from typing import Any

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from sqlalchemy.ext.asyncio import AsyncSession

from shared.config import Settings, get_settings
from shared.db.engine import after_commit

BOOKING_QUEUE = "arq:queue:booking"
WEBHOOKS_QUEUE = "arq:queue:webhooks"
NOTIFY_QUEUE = "arq:queue:notify"
HEALTH_CHECK_INTERVAL_S = 10


def redis_settings(settings: Settings | None = None) -> RedisSettings:
    """Connection settings for ARQ; a worker imported without REDIS_URL points at localhost."""
    settings = settings or get_settings()
    rs = RedisSettings.from_dsn(settings.redis_url or "redis://127.0.0.1:6379/0")
    rs.conn_timeout = int(max(1, settings.redis_timeout_s))
    return rs


async def arq_pool(settings: Settings | None = None) -> ArqRedis:
    return await create_pool(redis_settings(settings))


def enqueue_after_commit(
    session: AsyncSession, pool: ArqRedis, queue: str, job: str, *args: Any, **kwargs: Any
) -> None:
    """Buffer a job; it is sent only if the session's transaction commits (a rollback drops it)."""

    async def _send() -> None:
        await pool.enqueue_job(job, *args, _queue_name=queue, **kwargs)

    after_commit(session, _send)
