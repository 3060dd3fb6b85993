"""ARQ queues: names and connection settings. Jobs are sent through `shared.outbox`, never
enqueued directly from a request: the outbox row is what makes them survive a crash."""

from __future__ import annotations

from arq.connections import RedisSettings

from shared.config import Settings, get_settings

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
