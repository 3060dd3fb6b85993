"""The common shape of every service's ARQ worker: DB + settings in the context, short timeouts.

    class WorkerSettings(ServiceWorker):
        service = "booking"
        tasks = tasks  # the service's TaskRegistry (shared.jobs.tasks)
        on_startup = startup  # optional: the service's hooks, around worker_startup/shutdown

Workers run as `python -m shared.jobs.worker_main services.<name>.worker.WorkerSettings`, which
outlives Redis and database outages and drains on SIGTERM (ADR 0018); `arq --check` still
works on the same settings class."""

from __future__ import annotations

import dataclasses
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, cast

from arq.connections import RedisSettings
from arq.cron import CronJob
from arq.typing import WorkerCoroutine
from arq.worker import Function

from shared.config import get_settings
from shared.db.engine import Database
from shared.gc_tuning import freeze_startup_objects
from shared.jobs.context import JobContext
from shared.jobs.queue import HEALTH_CHECK_INTERVAL_S, redis_settings
from shared.jobs.tasks import TaskRegistry
from shared.jobs.worker_metrics import instrument, start_metrics, stop_metrics
from shared.observability.logging import configure_logging
from shared.observability.tracing import configure_tracing, traced_job

log = logging.getLogger(__name__)
MAX_TRIES = 5
# ARQ calls a hook with its context dict; each hook names the JobContext (sub)type it reads.
Hook = Callable[[Any], Awaitable[object]]
Reconnect = Callable[[JobContext], Awaitable[object]]


def health_check_key(queue: str) -> str:
    """ARQ's health-check key of this host's worker on `queue` (the pod name in k8s)."""
    return f"{queue}:health-check:{socket.gethostname()}"


async def worker_startup(ctx: JobContext) -> None:
    """The common on_startup: logging, tracing, settings, the database engine, /metrics."""
    service = ctx["service"]
    settings = get_settings()
    configure_logging(f"{service}-worker", settings.log_level, settings.log_json)
    configure_tracing(f"{service}-worker", settings)
    ctx["settings"] = settings
    ctx["db"] = Database(settings=settings)
    await start_metrics(ctx)
    freeze_startup_objects()
    log.info("worker started", extra={"queue": service})


async def worker_shutdown(ctx: JobContext) -> None:
    """The common on_shutdown: /metrics stopped, the database engine disposed."""
    await stop_metrics(ctx)
    db = ctx.get("db")
    if db is not None:
        await db.dispose()


async def ping(ctx: JobContext) -> str:
    """A no-op job: proves the worker consumes its queue."""
    return "pong"


def traced_function(function: Function | WorkerCoroutine, queue: str) -> Any:
    """A job function, as given (coroutine, or `func(...)` with its options), run by
    `traced_job`; ARQ names it as before (wraps keeps the coroutine's `__qualname__`)."""
    if not isinstance(function, Function):
        return traced_job(function, function.__qualname__, queue)
    return dataclasses.replace(
        function, coroutine=traced_job(function.coroutine, function.name, queue)
    )


def traced_cron(cron_job: CronJob, queue: str) -> CronJob:
    return dataclasses.replace(
        cron_job, coroutine=traced_job(cron_job.coroutine, cron_job.name, queue)
    )


# Options a subclass inherits; ARQ reads only a settings class's own __dict__ (get_kwargs).
_INHERITED = (
    "service",
    "on_reconnect",
    "on_startup",
    "on_shutdown",
    "health_check_interval",
    "max_tries",
    "keep_result",
)


class ServiceWorker:
    """Base of a service's ARQ `WorkerSettings`: short job timeouts (a killed worker's job is
    retried after timeout + 10 s), a 10 s health check for `arq --check`, every job and cron
    of `tasks` (plus `ping`) traced and counted in jobs_total.

    `on_reconnect(ctx)` runs (in `shared.jobs.worker_main`) once Redis answers again after an
    outage: Redis may have lost its data, so the sweepers re-enqueue from the database.
    Defining a subclass reads the settings (job timeout, Redis URL), as importing it did."""

    # Not ARQ options (ARQ ignores them): `service` and `on_reconnect` are read by
    # shared.jobs.worker_main, `tasks` by __init_subclass__.
    service: ClassVar[str]
    tasks: ClassVar[TaskRegistry]
    on_reconnect: ClassVar[Reconnect | None] = None
    on_startup: ClassVar[Hook] = worker_startup
    on_shutdown: ClassVar[Hook] = worker_shutdown
    health_check_interval: ClassVar[int] = HEALTH_CHECK_INTERVAL_S
    max_tries: ClassVar[int] = MAX_TRIES
    # No result keys: the database records outcomes, and a finished job's `_job_id` must be
    # enqueueable again (sweeper, replay) instead of silently refused for 1 h.
    keep_result: ClassVar[int] = 0
    # Set for each subclass from `tasks` and the settings.
    queue_name: ClassVar[str]
    functions: ClassVar[list[Any]]
    cron_jobs: ClassVar[list[CronJob]]
    ctx: ClassVar[JobContext]
    redis_settings: ClassVar[RedisSettings]
    health_check_key: ClassVar[str]
    job_timeout: ClassVar[float]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        queue = cls.tasks.queue
        timeout = get_settings().worker_job_timeout_s
        jobs = (cast(WorkerCoroutine, ping), *cls.tasks.functions)
        traced = [traced_function(f, queue) for f in jobs]
        crons = [traced_cron(c, queue) for c in cls.tasks.cron_jobs]
        for name in _INHERITED:
            if name not in vars(cls):
                setattr(cls, name, getattr(cls, name))
        cls.queue_name = queue
        # Traced (the job's trace context and correlation id) and counted (jobs_total).
        cls.functions = instrument(traced, queue, max_tries=cls.max_tries, job_timeout_s=timeout)
        cls.cron_jobs = instrument(crons, queue, max_tries=cls.max_tries, job_timeout_s=timeout)
        # worker_startup reads the service, start_metrics the queue (queue_depth).
        cls.ctx = {"service": cls.service, "queue_name": queue}
        cls.redis_settings = redis_settings()
        # A heartbeat key per process, so `arq --check` in a pod checks that pod's worker (one
        # key per queue would pass while any replica lives).
        cls.health_check_key = health_check_key(queue)
        cls.job_timeout = timeout
