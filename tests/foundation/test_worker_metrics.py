"""Worker metrics: job outcomes (`instrument`), the queue gauges, the worker's own /metrics port
(a real ARQ burst worker), the overdue-callback gauge, and the local runner's ports."""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
import sys
import time
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from arq import Retry, Worker, cron, func
from arq.connections import create_pool
from arq.cron import CronJob
from arq.worker import Function
from prometheus_client import REGISTRY

from services.booking.callbacks.metrics import count_overdue, refresh_overdue_callbacks
from shared.config import Settings
from shared.db.engine import Database
from shared.db.types import utcnow
from shared.jobs.queue import redis_settings
from shared.jobs.worker import ping
from shared.jobs.worker_metrics import (
    instrument,
    refresh_queue_depth,
    run_periodically,
    serve,
    start_metrics,
    stop_metrics,
)
from shared.models import CallbackRequest
from tests.support.factories import create_salon
from tools.children import child_overrides, worker_metrics_ports
from tools.supervision import Supervisor


def count(queue: str, job: str, outcome: str) -> float:
    labels = {"queue": queue, "job": job, "outcome": outcome}
    return REGISTRY.get_sample_value("jobs_total", labels) or 0.0


def new_queue() -> str:
    return f"arq:queue:test-{uuid.uuid4().hex[:8]}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def finishes(ctx: dict[str, Any]) -> str:
    return "done"


async def asks_again(ctx: dict[str, Any]) -> None:
    raise Retry(defer=1)


async def breaks(ctx: dict[str, Any]) -> None:
    raise RuntimeError("a bug")


async def hangs(ctx: dict[str, Any]) -> None:
    await asyncio.sleep(30)


# --- job outcomes ------------------------------------------------------------------------------


async def test_jobs_total_counts_success_retry_and_failure() -> None:
    queue = new_queue()
    ok, again, broken, slow = instrument(
        [finishes, asks_again, breaks, hangs], queue, max_tries=3, job_timeout_s=0.3
    )
    assert await ok({"job_try": 1}) == "done"
    with pytest.raises(Retry):
        await again({"job_try": 2})
    with pytest.raises(Retry):  # the last try: ARQ will drop the job, so it is a failure
        await again({"job_try": 3})
    with pytest.raises(RuntimeError):
        await broken({"job_try": 1})
    with pytest.raises(TimeoutError):  # ARQ's job timeout
        await asyncio.wait_for(slow({"job_try": 1}), timeout=0.3)
    shutdown = asyncio.create_task(slow({"job_try": 1}))
    await asyncio.sleep(0.05)
    shutdown.cancel()  # a worker shutting down: ARQ runs the job again later
    with pytest.raises(asyncio.CancelledError):
        await shutdown

    assert [count(queue, "finishes", o) for o in ("success", "retry", "failure")] == [1, 0, 0]
    assert [count(queue, "asks_again", o) for o in ("success", "retry", "failure")] == [0, 1, 1]
    assert [count(queue, "breaks", o) for o in ("success", "retry", "failure")] == [0, 0, 1]
    assert [count(queue, "hangs", o) for o in ("success", "retry", "failure")] == [0, 1, 1]
    durations = {"queue": queue, "job": "hangs"}
    assert REGISTRY.get_sample_value("job_duration_seconds_count", durations) == 2.0
    assert (REGISTRY.get_sample_value("job_duration_seconds_sum", durations) or 0) >= 0.3


async def test_instrumented_jobs_register_with_arq_as_before(settings: Settings) -> None:
    queue = new_queue()
    plain, registered, crons = instrument(
        [finishes, func(asks_again, max_tries=7), cron(finishes, second={0}, unique=True)],
        queue,
        max_tries=3,
        job_timeout_s=30,
    )
    assert (plain.__name__, plain.__qualname__) == ("finishes", "finishes")
    assert inspect.iscoroutinefunction(plain)
    assert isinstance(registered, Function) and registered.name == "asks_again"
    assert registered.max_tries == 7
    assert isinstance(crons, CronJob) and crons.name == "cron:finishes"
    assert (crons.second, crons.unique) == ({0}, True)
    with pytest.raises(Retry):  # the function's own max_tries (7), not the default (3)
        await registered.coroutine({"job_try": 3})
    assert count(queue, "asks_again", "retry") == 1
    await crons.coroutine({})
    assert count(queue, "cron:finishes", "success") == 1
    worker = Worker(
        functions=[plain, registered],
        cron_jobs=[crons],
        queue_name=queue,
        redis_settings=redis_settings(settings),
        handle_signals=False,
    )
    assert set(worker.functions) == {"finishes", "asks_again", "cron:finishes"}


# --- the worker's /metrics ---------------------------------------------------------------------


async def test_a_worker_serves_jobs_total_on_its_metrics_port(settings: Settings) -> None:
    queue, port = new_queue(), free_port()
    served = settings.model_copy(
        update={"worker_metrics_port": port, "worker_metrics_host": "127.0.0.1"}
    )
    worker = Worker(
        functions=instrument([ping], queue, max_tries=5, job_timeout_s=10),
        queue_name=queue,
        redis_settings=redis_settings(settings),
        burst=True,
        poll_delay=0.05,
        keep_result=0,
        ctx={"settings": served, "queue_name": queue},
        on_startup=start_metrics,
        on_shutdown=stop_metrics,
        handle_signals=False,
    )
    pool = await create_pool(redis_settings(settings))
    try:
        assert await pool.enqueue_job("ping", _queue_name=queue) is not None
        await asyncio.wait_for(worker.main(), timeout=20)
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{port}/metrics")
        assert response.status_code == 200
        line = f'jobs_total{{job="ping",outcome="success",queue="{queue}"}} 1.0'
        assert line in response.text.splitlines()
        assert f'queue_depth{{queue="{queue}"}}' in response.text
    finally:
        await worker.close()  # on_shutdown: the server stops
        await pool.delete(queue)
        await pool.aclose()
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/metrics")


def test_a_taken_or_zero_port_costs_a_warning_not_the_worker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert serve("127.0.0.1", 0) is None
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.WARNING, logger="shared.jobs.worker_metrics"):
            assert serve("127.0.0.1", port) is None
    assert f"127.0.0.1:{port} unavailable" in caplog.text


async def test_queue_depth_and_the_oldest_due_job(settings: Settings) -> None:
    queue = new_queue()
    pool = await create_pool(redis_settings(settings))
    now_ms = int(time.time() * 1000)
    try:
        assert await refresh_queue_depth(pool, queue, now_ms) == 0
        assert REGISTRY.get_sample_value("queue_oldest_job_age_seconds", {"queue": queue}) == 0
        # One job due 3 s ago, one deferred a minute into the future (a retry waiting).
        await pool.zadd(queue, {"due": now_ms - 3000, "deferred": now_ms + 60_000})
        assert await refresh_queue_depth(pool, queue, now_ms) == 2
    finally:
        await pool.delete(queue)
        await pool.aclose()
    assert REGISTRY.get_sample_value("queue_depth", {"queue": queue}) == 2
    assert REGISTRY.get_sample_value("queue_oldest_job_age_seconds", {"queue": queue}) == 3.0


async def test_periodic_refreshes_survive_failures_and_stop_with_the_worker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[float] = []

    async def refresh(ctx: dict[str, Any]) -> None:
        runs.append(time.monotonic())
        if len(runs) in (2, 3):
            raise ConnectionError("redis away")

    ctx: dict[str, Any] = {}
    with caplog.at_level(logging.WARNING, logger="shared.jobs.worker_metrics"):
        run_periodically(ctx, 0.01, refresh, name="flaky")
        while len(runs) < 5:
            await asyncio.sleep(0.01)
        await stop_metrics(ctx)
    stopped_at = len(runs)
    await asyncio.sleep(0.05)
    assert len(runs) == stopped_at
    assert ctx == {}
    failures = [r for r in caplog.records if "metrics refresh flaky failed" in r.getMessage()]
    assert len(failures) == 1  # once per failing streak, not per run


# --- overdue callbacks -------------------------------------------------------------------------


async def test_callbacks_overdue_counts_pending_and_assigned_past_due(db: Database) -> None:
    salon = await create_salon(db)
    now = utcnow()
    before = await count_overdue(db, now)
    async with db.transaction(salon.tenant.company_id) as session:
        for status, due in (
            ("pending", now - timedelta(minutes=5)),
            ("assigned", now - timedelta(hours=3)),
            ("pending", now + timedelta(hours=1)),
            ("contacted", now - timedelta(hours=1)),
            ("resolved", now - timedelta(hours=3)),
        ):
            session.add(
                CallbackRequest(
                    phone_number="+491701234567",
                    reason="metrics",
                    status=status,
                    due_at=due,
                    branch_id=salon.branch_id,
                )
            )
    assert await count_overdue(db, now) == before + 2
    refreshed = await refresh_overdue_callbacks({"db": db})
    assert refreshed >= before + 2
    assert REGISTRY.get_sample_value("callbacks_overdue") == refreshed


# --- the local runner --------------------------------------------------------------------------


def test_the_runner_gives_each_worker_its_own_metrics_port() -> None:
    assert worker_metrics_ports(Settings(worker_metrics_port=9100)) == {
        "booking-worker": 9101,
        "webhooks-worker": 9102,
        "notifications-worker": 9103,
    }
    assert set(worker_metrics_ports(Settings(worker_metrics_port=0)).values()) == {0}
    overrides = child_overrides(Settings(worker_metrics_port=9200))
    assert overrides["notifications-worker"] == {
        "WORKER_METRICS_PORT": "9203",
        "WORKER_METRICS_HOST": "127.0.0.1",
    }
    assert "booking" not in overrides  # the services keep the shared environment


def test_the_supervisor_adds_a_childs_overrides_to_the_shared_environment() -> None:
    show = "import os, sys; sys.exit(int(os.environ['WORKER_METRICS_PORT']) - 9100)"
    supervisor = Supervisor(
        {"booking-worker": [sys.executable, "-c", show], "policy": [sys.executable, "-c", show]},
        {"WORKER_METRICS_PORT": "9100", "PATH": ""},
        {"booking-worker": {"WORKER_METRICS_PORT": "9101"}},
    )
    supervisor.start()
    try:
        codes = {name: proc.wait(timeout=20) for name, proc in supervisor.children.items()}
    finally:
        supervisor.stop()
    assert codes == {"booking-worker": 1, "policy": 0}


def test_worker_metrics_settings_default_to_port_9100_on_every_interface() -> None:
    fields = Settings.model_fields
    assert fields["worker_metrics_port"].default == 9100
    assert fields["worker_metrics_host"].default == "0.0.0.0"
    with pytest.raises(ValueError):
        Settings(worker_metrics_port=70000)
