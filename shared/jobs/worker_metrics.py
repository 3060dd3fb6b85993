"""Prometheus metrics of the ARQ workers, and the port that serves them.

- `jobs_total{queue,job,outcome}` and `job_duration_seconds{queue,job}`: every run of a job
  that `instrument` wrapped. outcome: success; retry (it runs again: `arq.Retry` with tries
  left, or cancelled by a shutdown); failure (an exception, the job timeout, or a Retry on the
  last try, which ARQ then drops as "max retries exceeded").
- `queue_depth{queue}` (ZCARD of the ARQ queue, deferred retries included) and
  `queue_oldest_job_age_seconds{queue}` (how long the oldest due job has waited), refreshed
  every few seconds by a task of the worker's event loop, so a scrape never waits for Redis.
  Every replica reports the same numbers: aggregate with `max by (queue)`.
- `start_metrics` serves the process registry (these plus whatever the jobs count, e.g.
  `calcom_requests_total`) on `WORKER_METRICS_PORT` from prometheus_client's HTTP server
  thread; a port that is taken costs a warning, never the worker.

Wiring (shared/jobs/worker.py): `functions`/`cron_jobs` through `instrument`, `start_metrics(ctx)`
in on_startup once `ctx["settings"]` is set, `stop_metrics(ctx)` in on_shutdown. Other
gauges a worker refreshes periodically use `run_periodically`; `stop_metrics` ends them too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from threading import Thread
from typing import Any, Final, cast
from wsgiref.simple_server import WSGIServer

from arq import Retry
from arq.cron import CronJob
from arq.typing import WorkerCoroutine
from arq.worker import Function
from prometheus_client import Counter, Gauge, Histogram, start_http_server
from redis.asyncio import Redis

from shared.config import Settings, get_settings
from shared.jobs.context import JobContext

log = logging.getLogger(__name__)

QUEUE_DEPTH_INTERVAL_S: Final = 5.0
REDIS_BUDGET_S: Final = 2.0  # one refresh's Redis round trip, at most
# A cancelled job that ran this close to its timeout (at most a tenth of it) was cancelled by
# the timeout, not by a shutdown: ARQ's wait_for started the clock just before the job did.
TIMEOUT_SLACK_S: Final = 0.25

JOBS = Counter(
    "jobs_total",
    "ARQ job runs by queue, job and outcome (success, retry, failure).",
    ["queue", "job", "outcome"],
)
JOB_DURATION = Histogram(
    "job_duration_seconds",
    "ARQ job run time by queue and job, whatever the outcome.",
    ["queue", "job"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
QUEUE_DEPTH = Gauge(
    "queue_depth",
    "Jobs in the ARQ queue (ZCARD: due and deferred), as last read by this worker.",
    ["queue"],
)
OLDEST_JOB_AGE = Gauge(
    "queue_oldest_job_age_seconds",
    "Seconds the oldest due job of the ARQ queue has waited (0: none due), as last read.",
    ["queue"],
)

Refresh = Callable[[JobContext], Awaitable[object]]
JobFunction = Callable[..., Coroutine[Any, Any, Any]]


# --- job outcomes ------------------------------------------------------------------------------


def instrument(
    jobs: Iterable[Any], queue: str, *, max_tries: int, job_timeout_s: float
) -> list[Any]:
    """`jobs` (coroutine functions, `arq.func(...)` or `arq.cron(...)` entries) with each run
    counted in jobs_total. `max_tries`/`job_timeout_s`: the worker's defaults, for entries
    that set none. A coroutine function stays one (same name), so ARQ names the job alike."""
    return [_instrument_one(job, queue, max_tries, job_timeout_s) for job in jobs]


def _instrument_one(job: Any, queue: str, max_tries: int, job_timeout_s: float) -> Any:
    if isinstance(job, Function | CronJob):
        counted = _counted(
            job.coroutine,
            queue,
            job.name,
            job.max_tries or max_tries,
            job.timeout_s or job_timeout_s,
        )
        # ARQ types a job's context as a plain dict; ours is a TypedDict of that dict.
        return dataclasses.replace(job, coroutine=cast(WorkerCoroutine, counted))
    if callable(job):
        return _counted(job, queue, job.__qualname__, max_tries, job_timeout_s)
    raise TypeError(f"not a job: {job!r}")


def _counted(
    job: JobFunction, queue: str, name: str, max_tries: int, timeout_s: float
) -> JobFunction:
    @functools.wraps(job)
    async def run(ctx: JobContext, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        outcome = "failure"
        try:
            result = await job(ctx, *args, **kwargs)
        except Retry:
            outcome = "retry" if (ctx.get("job_try") or 1) < max_tries else "failure"
            raise
        except asyncio.CancelledError:
            elapsed = time.perf_counter() - started
            slack = min(TIMEOUT_SLACK_S, timeout_s / 10)
            outcome = "failure" if elapsed >= timeout_s - slack else "retry"
            raise
        else:
            outcome = "success"
            return result
        finally:
            JOBS.labels(queue, name, outcome).inc()
            JOB_DURATION.labels(queue, name).observe(time.perf_counter() - started)

    return run


# --- queue depth -------------------------------------------------------------------------------


async def refresh_queue_depth(redis: Redis, queue: str, now_ms: int | None = None) -> int:
    """Read the queue's size and oldest due job into the gauges; the size."""
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcard(queue)
        pipe.zrangebyscore(queue, "-inf", now_ms, start=0, num=1, withscores=True)
        depth, oldest = await pipe.execute()
    QUEUE_DEPTH.labels(queue).set(depth)
    OLDEST_JOB_AGE.labels(queue).set(max(0.0, (now_ms - oldest[0][1]) / 1000) if oldest else 0.0)
    return int(depth)


def run_periodically(
    ctx: JobContext, interval_s: float, refresh: Refresh, *, name: str | None = None
) -> asyncio.Task[None]:
    """Run `refresh(ctx)` now and then every `interval_s` (each run bounded by the interval)
    until `stop_metrics(ctx)`. A failing run is logged once until one succeeds again."""
    label = name or getattr(refresh, "__qualname__", "refresh")

    async def loop() -> None:
        failing = False
        while True:
            try:
                async with asyncio.timeout(interval_s):
                    await refresh(ctx)
            except Exception as exc:
                if not failing:
                    log.warning("metrics refresh %s failed: %r", label, exc)
                failing = True
            else:
                failing = False
            await asyncio.sleep(interval_s)

    task = asyncio.get_running_loop().create_task(loop(), name=f"metrics:{label}")
    ctx.setdefault("metrics_tasks", []).append(task)
    return task


# --- the worker's /metrics ---------------------------------------------------------------------


def serve(host: str, port: int) -> tuple[WSGIServer, Thread] | None:
    """The process registry over HTTP on host:port from a daemon thread; None when the port
    is 0 (off) or cannot be bound (logged: metrics are not worth a dead worker)."""
    if port == 0:
        return None
    try:
        return start_http_server(port, addr=host)
    except OSError as exc:
        log.warning("worker metrics not served: %s:%d unavailable (%s)", host, port, exc)
        return None


async def start_metrics(ctx: JobContext, queue: str | None = None) -> None:
    """Serve /metrics on the settings' port and keep the queue gauges fresh. `queue`: the
    worker's queue, by default `ctx["queue_name"]` (ARQ's `ctx` worker setting)."""
    settings = ctx.get("settings")
    if not isinstance(settings, Settings):
        settings = get_settings()
    ctx["metrics_server"] = serve(settings.worker_metrics_host, settings.worker_metrics_port)
    queue = queue or ctx.get("queue_name")
    redis = ctx.get("redis")
    if queue and redis is not None:

        async def refresh(ctx: JobContext) -> None:
            async with asyncio.timeout(REDIS_BUDGET_S):
                await refresh_queue_depth(redis, queue)

        run_periodically(ctx, QUEUE_DEPTH_INTERVAL_S, refresh, name=f"queue_depth:{queue}")


async def stop_metrics(ctx: JobContext) -> None:
    """End the periodic refreshes and the HTTP server started for this worker."""
    tasks = ctx.pop("metrics_tasks", [])
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
    server = ctx.pop("metrics_server", None)
    if server is not None:
        httpd, thread = server
        # shutdown() waits for the serving loop (up to its 0.5 s poll): not on the event loop.
        await asyncio.to_thread(httpd.shutdown)
        httpd.server_close()
        thread.join(timeout=1.0)
