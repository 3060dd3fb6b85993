"""The common shape of every service's ARQ worker: DB + settings in the context, short timeouts.

Workers run as `python -m shared.jobs.worker_main services.<name>.worker.WorkerSettings`, which
outlives Redis and database outages and drains on SIGTERM (ADR 0018); `arq --check` still
works on the same settings class."""

from __future__ import annotations

import dataclasses
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from arq import func
from arq.cron import CronJob
from arq.worker import Function

from shared.config import get_settings
from shared.db.engine import Database
from shared.gc_tuning import freeze_startup_objects
from shared.jobs.queue import HEALTH_CHECK_INTERVAL_S, redis_settings
from shared.jobs.worker_metrics import instrument, start_metrics, stop_metrics
from shared.observability.logging import configure_logging
from shared.observability.tracing import configure_tracing, traced_job

log = logging.getLogger(__name__)
MAX_TRIES = 5


def health_check_key(queue: str) -> str:
    """ARQ's health-check key of this host's worker on `queue` (the pod name in k8s)."""
    return f"{queue}:health-check:{socket.gethostname()}"


def worker_hooks(service: str) -> tuple[Any, Any]:
    """on_startup/on_shutdown that create and dispose the worker's database engine."""

    async def startup(ctx: dict[str, Any]) -> None:
        settings = get_settings()
        configure_logging(f"{service}-worker", settings.log_level, settings.log_json)
        configure_tracing(f"{service}-worker", settings)
        ctx["settings"] = settings
        ctx["db"] = Database(settings=settings)
        await start_metrics(ctx)
        freeze_startup_objects()
        log.info("worker started", extra={"queue": service})

    async def shutdown(ctx: dict[str, Any]) -> None:
        await stop_metrics(ctx)
        db: Database | None = ctx.get("db")
        if db is not None:
            await db.dispose()

    return startup, shutdown


async def ping(ctx: dict[str, Any]) -> str:
    """A no-op job: proves the worker consumes its queue."""
    return "pong"


def traced_function(function: Any, queue: str) -> Any:
    """A job function, as given (coroutine, or `func(...)` with its options), run by
    `traced_job`; ARQ names it as before (wraps keeps the coroutine's `__qualname__`)."""
    if not isinstance(function, Function | str):
        return traced_job(function, function.__qualname__, queue)
    job = func(function)
    return dataclasses.replace(job, coroutine=traced_job(job.coroutine, job.name, queue))


def traced_cron(cron_job: CronJob, queue: str) -> CronJob:
    return dataclasses.replace(
        cron_job, coroutine=traced_job(cron_job.coroutine, cron_job.name, queue)
    )


def worker_settings(
    service: str,
    queue: str,
    functions: Sequence[Any],
    cron_jobs: Sequence[Any] = (),
    on_reconnect: Callable[[dict[str, Any]], Awaitable[object]] | None = None,
) -> type:
    """The ARQ `WorkerSettings` class of a service's worker: short job timeouts (a killed
    worker's job is retried after timeout + 10 s), a 10 s health check for `arq --check`,
    every job and cron traced (their trace context and correlation id travel in the job).

    `on_reconnect(ctx)` runs (in `shared.jobs.worker_main`) once Redis answers again after an
    outage: Redis may have lost its data, so the sweepers re-enqueue from the database."""
    startup, shutdown = worker_hooks(service)
    timeout = get_settings().worker_job_timeout_s
    traced = [traced_function(f, queue) for f in (ping, *functions)]
    crons = [traced_cron(c, queue) for c in cron_jobs]
    return type(
        "WorkerSettings",
        (),
        {
            # Not ARQ options (ARQ ignores them): read by shared.jobs.worker_main.
            "service": service,
            "on_reconnect": on_reconnect,
            "queue_name": queue,
            # Traced (the job's trace context and correlation id) and counted (jobs_total).
            "functions": instrument(traced, queue, max_tries=MAX_TRIES, job_timeout_s=timeout),
            "cron_jobs": instrument(crons, queue, max_tries=MAX_TRIES, job_timeout_s=timeout),
            # start_metrics reads the queue (queue_depth) from the worker's context.
            "ctx": {"queue_name": queue},
            "on_startup": startup,
            "on_shutdown": shutdown,
            "redis_settings": redis_settings(),
            # A heartbeat key per process, so `arq --check` in a pod checks that pod's worker
            # (one key per queue would pass while any replica lives).
            "health_check_key": health_check_key(queue),
            "health_check_interval": HEALTH_CHECK_INTERVAL_S,
            "job_timeout": timeout,
            "max_tries": MAX_TRIES,
            # No result keys: the database records outcomes, and a finished job's `_job_id`
            # must be enqueueable again (sweeper, replay) instead of silently refused for 1 h.
            "keep_result": 0,
        },
    )
