"""ARQ queues: names and connection settings. Jobs are sent through `shared.jobs.outbox`, never
enqueued directly from a request: the outbox row is what makes them survive a crash."""

from __future__ import annotations

import pickle
import time
from collections.abc import Mapping
from typing import Any

from arq.connections import ArqRedis, RedisSettings
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from shared.config import Settings, get_settings
from shared.observability.tracing import TRACE_KEY, inject_job_context

BOOKING_QUEUE = "arq:queue:booking"
WEBHOOKS_QUEUE = "arq:queue:webhooks"
NOTIFY_QUEUE = "arq:queue:notify"
NOTIFY_JOB = "notify"  # services/notifications/jobs.py `notify`
HEALTH_CHECK_INTERVAL_S = 10


def redis_settings(settings: Settings | None = None) -> RedisSettings:
    """Connection settings for ARQ; a worker imported without REDIS_URL points at localhost."""
    settings = settings or get_settings()
    rs = RedisSettings.from_dsn(settings.redis_url or "redis://127.0.0.1:6379/0")
    rs.conn_timeout = int(max(1, settings.redis_timeout_s))
    return rs


# ARQ's `enqueue_job` semantics (skip when the job or its result key exists; job key expiring
# 24 h after it is due; queue score = due time in ms) in one round trip instead of three
# (WATCH, EXISTS, MULTI/EXEC): the hot paths (webhook acknowledgement, outbox) enqueue a job
# per request. KEYS: job key, result key, queue; ARGV: expiry ms, job bytes, score, job id.
_ENQUEUE_UNIQUE = """
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return 0 end
redis.call('PSETEX', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
return 1
"""
EXPIRES_EXTRA_MS = 86_400_000  # ARQ's default: a job not started within a day is dropped


async def enqueue_unique(
    redis: ArqRedis | Redis,
    function: str,
    *args: Any,
    job_id: str,
    queue: str,
    trace: Mapping[str, str] | None = None,
) -> bool:
    """Enqueue `function(*args)` as job `job_id` unless that job is queued, running or has a
    result; True when enqueued. Readable by any ARQ worker (ARQ's own job format).

    `trace` (default: the current one) is the trace context the job continues, sent as its
    `_trace` kwarg only when tracing is on (see `shared.observability.tracing.traced_job`)."""
    now_ms = int(time.time() * 1000)
    context = inject_job_context() if trace is None else trace
    kwargs = {TRACE_KEY: dict(context)} if context else {}
    job = serialize_job(function, args, kwargs, None, now_ms, serializer=pickle.dumps)
    script = _script(redis)
    done = await script(
        keys=[job_key_prefix + job_id, result_key_prefix + job_id, queue],
        args=[EXPIRES_EXTRA_MS, job, now_ms, job_id],
    )
    return bool(done)


def _script(redis: ArqRedis | Redis) -> AsyncScript:
    """The script registered once per client (EVALSHA, falling back to EVAL after a flush)."""
    script: AsyncScript | None = getattr(redis, "_enqueue_unique_script", None)
    if script is None:
        script = redis.register_script(_ENQUEUE_UNIQUE)
        redis._enqueue_unique_script = script  # type: ignore[union-attr]
    return script
