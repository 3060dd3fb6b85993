"""ARQ worker of the booking service: `python -m shared.jobs.worker_main
services.booking.worker.WorkerSettings` (ADR 0018; `arq --check` on the same class).

Its jobs are declared in jobs.py (`tasks`). Besides the shared database context, the worker
holds one `httpx.AsyncClient` for Cal.com (connection reuse across jobs, timeouts on every
call) and a Redis client with socket timeouts (`ctx["redis_client"]`) for the per-appointment
sync lock and the shared circuit breaker: ARQ's own connection (`ctx["redis"]`) has a connect
timeout only.

After a Redis outage it re-enqueues every pending outbox row at once (`on_reconnect`), for
every queue: Redis may have come back empty, and the outbox is the record of every job.
"""

from __future__ import annotations

import httpx

from services.booking.callbacks.metrics import REFRESH_INTERVAL_S, refresh_overdue_callbacks
from services.booking.jobs import BookingContext, tasks
from shared.config import Settings, get_settings
from shared.jobs import outbox
from shared.jobs.context import JobContext
from shared.jobs.worker import ServiceWorker, worker_shutdown, worker_startup
from shared.jobs.worker_metrics import run_periodically
from shared.observability.tracing import outbound_limits
from shared.redis.connection import redis_client
from shared.security.outbound import outbound_client

# Default timeouts (the Cal.com client also passes its own on every call); the pool is
# sized for ARQ's default of 10 concurrent jobs with room for lookups.
CALCOM_TIMEOUT = httpx.Timeout(10.0, connect=3.0)
CALCOM_LIMITS = outbound_limits(50)


def calcom_http(settings: Settings | None = None) -> httpx.AsyncClient:
    """The worker's client for Cal.com: pooled, timeouts, every call a traced span, every
    connection checked by the outbound guard (tenants set the URL)."""
    return outbound_client(settings or get_settings(), timeout=CALCOM_TIMEOUT, limits=CALCOM_LIMITS)


async def startup(ctx: BookingContext) -> None:
    await worker_startup(ctx)
    ctx["http"] = calcom_http(ctx["settings"])
    ctx["redis_client"] = redis_client(settings=ctx["settings"])
    # Every replica refreshes its own gauge (a cron would run on one replica only).
    run_periodically(ctx, REFRESH_INTERVAL_S, refresh_overdue_callbacks)


async def shutdown(ctx: BookingContext) -> None:
    http = ctx.pop("http", None)
    if http is not None:
        await http.aclose()
    redis = ctx.pop("redis_client", None)
    if redis is not None:
        await redis.aclose()
    await worker_shutdown(ctx)


async def resend_outbox(ctx: JobContext) -> int:
    """After a Redis outage: the pending outbox rows of every queue, enqueued again now."""
    return await outbox.resend_pending(ctx["db"], ctx["redis"])


class WorkerSettings(ServiceWorker):
    """Cal.com sync, the outbox sweeper, the idempotency reaper, callback escalation."""

    service = "booking"
    tasks = tasks
    on_startup = startup
    on_shutdown = shutdown
    on_reconnect = resend_outbox
