"""Workers outlive their dependencies and drain on a stop signal (issue 14; ADR 0018).

`shared.jobs.worker_main.ResilientWorker` in-process on a redis-server of the test's own (started
late, killed, started again), and as the real process (`python -m shared.jobs.worker_main ...`)
stopped with real signals. No database is needed except where its absence is the point.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from arq import cron, func
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import in_progress_key_prefix, job_key_prefix
from redis.exceptions import ConnectionError as RedisConnectionError

from shared.config import Settings
from shared.jobs.queue import BOOKING_QUEUE
from shared.jobs.worker_main import ResilientWorker, lazy_pool
from shared.redis.connection import free_port
from tests.faults.redis_outage_support import (
    RedisProcess,
    WorkerProcess,
    process_env,
    redis_server,
    worker_argv,
)

QUEUE = "arq:queue:resilience"
DRAIN_QUEUE = "arq:queue:drain"


# --- the settings of the worker processes started below (imported by them) -------------------


async def slow(ctx: dict[str, Any], name: str, seconds: float) -> str:
    """Marks its start and its end in DRAIN_DIR."""
    directory = Path(os.environ["DRAIN_DIR"])
    (directory / f"{name}.started").touch()
    await asyncio.sleep(seconds)
    (directory / f"{name}.finished").touch()
    return name


class DrainSettings:
    """A worker of `slow` jobs on its own queue (see the drain tests)."""

    functions = [slow]
    queue_name = DRAIN_QUEUE
    redis_settings = RedisSettings.from_dsn(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
    poll_delay = 0.05
    keep_result = 0
    job_timeout = 60


# --- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def outage_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    with redis_server(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def stopped_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """Not running yet: the test starts it."""
    with redis_server(tmp_path / "redis", running=False) as server:
        yield server


async def wait_for(
    check: Callable[[], Awaitable[bool] | bool], timeout_s: float, what: str
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


def in_process_worker(
    server: RedisProcess, seen: list[str], reconnects: list[int], **options: Any
) -> ResilientWorker:
    """A worker with one job (`record`) and a cron every second, recording into `seen`."""

    async def record(ctx: dict[str, Any], name: str) -> None:
        seen.append(name)

    async def tick(ctx: dict[str, Any]) -> None:
        seen.append("tick")

    async def on_reconnect(ctx: dict[str, Any]) -> None:
        reconnects.append(len(seen))

    return ResilientWorker(
        functions=[func(record, name="record")],
        cron_jobs=[cron(tick, second=set(range(60)), unique=True, run_at_startup=True)],
        queue_name=QUEUE,
        redis_settings=RedisSettings(port=server.port, conn_timeout=1),
        handle_signals=False,
        poll_delay=0.05,
        keep_result=0,
        on_reconnect=on_reconnect,
        app_settings=Settings(_env_file=None, redis_timeout_s=1.0),
        **options,
    )


async def stop(worker: ResilientWorker, main: asyncio.Task[None]) -> None:
    worker.handle_sig(signal.SIGTERM)
    await asyncio.wait_for(main, 5)
    await worker.close()


# --- Redis goes away, and comes back -----------------------------------------------------------


async def test_worker_waits_for_redis_and_outlives_its_restarts(
    stopped_redis: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="shared.jobs.worker_main")
    server = stopped_redis
    seen: list[str] = []
    reconnects: list[int] = []
    worker = in_process_worker(server, seen, reconnects)
    main = asyncio.create_task(worker.main())
    try:
        await asyncio.sleep(1.6)  # no Redis yet: polls fail at 0, 0.5, 1.5 s
        assert not main.done()
        assert worker.redis_outage.down and worker.redis_outage.failures >= 2
        server.start()
        # Within the backoff (2 s now): the cron that runs at start-up, and the reconnect hook.
        await wait_for(lambda: "tick" in seen, 5, "the start-up cron")
        assert reconnects == [0]
        pool: ArqRedis = await create_pool(RedisSettings(port=server.port))
        try:
            await pool.enqueue_job("record", "first", _queue_name=QUEUE)
            await wait_for(lambda: "first" in seen, 5, "the first job")
        finally:
            await pool.aclose()

        server.kill()  # SIGKILL: connections reset, data gone
        await asyncio.sleep(2.0)
        assert not main.done()
        ticks = seen.count("tick")
        await asyncio.sleep(1.0)
        assert seen.count("tick") == ticks  # nothing runs without Redis
        server.start()  # empty
        pool = await create_pool(RedisSettings(port=server.port))
        try:
            await pool.enqueue_job("record", "second", _queue_name=QUEUE)
            await wait_for(lambda: "second" in seen, 10, "a job after the restart")
            # Crons resume: ticks again, every second.
            await wait_for(lambda: seen.count("tick") >= ticks + 2, 5, "the cron again")
        finally:
            await pool.aclose()
        assert len(reconnects) == 2
    finally:
        await stop(worker, main)
    messages = [r.getMessage() for r in caplog.records if r.name == "shared.jobs.worker_main"]
    # Each outage once, and its end once: not a line per failed poll.
    assert [m.split(";")[0].split(" after")[0] for m in messages if "Redis" in m] == [
        "Redis unavailable",
        "Redis reachable again",
        "Redis unavailable",
        "Redis reachable again",
    ], messages


async def test_missed_cron_ticks_run_once_after_an_outage() -> None:
    """Ticks missed while Redis was down: the last one runs (its id is the same on every
    replica), the earlier ones are skipped; ARQ alone would run each, one per poll."""
    ran: list[str] = []

    async def minutely(ctx: dict[str, Any]) -> None:
        ran.append("x")

    worker = ResilientWorker(
        cron_jobs=[cron(minutely, second={0}, unique=True)],
        queue_name=QUEUE,
        handle_signals=False,
        app_settings=Settings(_env_file=None),
    )
    [job] = worker.cron_jobs
    now = datetime(2030, 5, 14, 9, 30, 20, tzinfo=UTC)
    job.next_run = now - timedelta(minutes=10, seconds=20)  # 09:20:00, 10 ticks ago
    worker._resume_crons(now)
    # (ARQ's cron times carry 123456 µs.)
    assert job.next_run.replace(microsecond=0) == datetime(2030, 5, 14, 9, 30, 0, tzinfo=UTC)
    job.next_run = upcoming = now + timedelta(seconds=40)  # not missed: unchanged
    worker._resume_crons(now)
    assert job.next_run == upcoming


async def test_a_job_start_failing_on_redis_gives_its_slot_back(
    stopped_redis: RedisProcess,
) -> None:
    """ARQ takes a slot (semaphore, counter) before its Redis round trips; when they fail the
    slot must come back, or ten such failures leave a worker that never takes a job again."""
    worker = in_process_worker(stopped_redis, [], [], max_jobs=2)
    assert worker.redis_settings is not None
    worker._pool = lazy_pool(worker.redis_settings, worker.app_settings, queue=QUEUE)
    try:
        for _ in range(5):
            with pytest.raises(RedisConnectionError):
                await worker.start_jobs([b"some-job"])
        assert worker.job_counter == 0
        assert worker.sem._value == 3  # max_jobs + 1, as ARQ made it
    finally:
        await worker.pool.aclose()


# --- stopping: the drain -----------------------------------------------------------------------


def drain_worker(server: RedisProcess, directory: Path, drain_s: float) -> WorkerProcess:
    argv = [sys.executable, "-m", "shared.jobs.worker_main", f"{__name__}.DrainSettings"]
    env = process_env(
        Settings(_env_file=None),
        server.url,
        DRAIN_DIR=str(directory),
        WORKER_DRAIN_TIMEOUT_S=str(drain_s),
        LOG_LEVEL="INFO",
    )
    return WorkerProcess(argv, env, directory / "worker.log").start()


async def test_sigterm_lets_running_jobs_finish_and_takes_no_new_ones(
    outage_redis: RedisProcess, tmp_path: Path
) -> None:
    pool: ArqRedis = await create_pool(RedisSettings(port=outage_redis.port))
    worker = drain_worker(outage_redis, tmp_path, drain_s=10)
    try:
        for index in range(3):
            await pool.enqueue_job("slow", f"job{index}", 1.5, _queue_name=DRAIN_QUEUE)
        started = [tmp_path / f"job{index}.started" for index in range(3)]
        await wait_for(lambda: all(p.exists() for p in started), 15, "three jobs to start")
        worker.signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        await asyncio.sleep(0.3)
        late = await pool.enqueue_job("slow", "late", 0.1, _queue_name=DRAIN_QUEUE)
        assert late is not None
        code = await asyncio.to_thread(worker.wait, 10)
        took = time.monotonic() - stopped_at
        assert code == 0, worker.output()
        assert all((tmp_path / f"job{index}.finished").exists() for index in range(3))
        assert took < 3.0, took  # the jobs' 1.5 s, not the 10 s of grace
        assert not (tmp_path / "late.started").exists()  # no new job after the signal
        assert await pool.zscore(DRAIN_QUEUE, late.job_id) is not None  # left for others
        assert "SIGTERM received: taking no new jobs, 3 running" in worker.output()
    finally:
        worker.stop()
        await pool.aclose()


async def test_jobs_still_running_after_the_grace_are_cancelled_and_run_again(
    outage_redis: RedisProcess, tmp_path: Path
) -> None:
    pool: ArqRedis = await create_pool(RedisSettings(port=outage_redis.port))
    worker = drain_worker(outage_redis, tmp_path, drain_s=0.5)
    try:
        job = await pool.enqueue_job("slow", "long", 30, _queue_name=DRAIN_QUEUE)
        assert job is not None
        await wait_for((tmp_path / "long.started").exists, 15, "the job to start")
        worker.signal(signal.SIGTERM)
        code = await asyncio.to_thread(worker.wait, 10)
        assert code == 0, worker.output()
        assert not (tmp_path / "long.finished").exists()
        # Cancelled, not lost: still queued, no longer "in progress", so a worker runs it again.
        assert await pool.zscore(DRAIN_QUEUE, job.job_id) is not None
        assert not await pool.exists(in_progress_key_prefix + job.job_id)
        assert "still running after 0.5 s: cancelling" in worker.output()

        again = drain_worker(outage_redis, tmp_path, drain_s=30)
        try:
            (tmp_path / "long.started").unlink()
            await wait_for((tmp_path / "long.started").exists, 15, "the job to run again")
            # Ctrl-C in a terminal: SIGINT, and the runner's SIGTERM after it, which does not
            # cut the drain short; a second Ctrl-C does not wait for the 30 s of grace.
            again.signal(signal.SIGINT)
            await asyncio.sleep(0.3)
            again.signal(signal.SIGTERM)
            await asyncio.sleep(0.7)
            assert again.alive
            again.signal(signal.SIGINT)
            assert await asyncio.to_thread(again.wait, 10) == 0, again.output()
            assert "SIGTERM received: already draining" in again.output()
            assert "SIGINT received again: cancelling 1 running jobs now" in again.output()
        finally:
            again.stop()
    finally:
        worker.stop()
        await pool.aclose()


# --- the database goes away --------------------------------------------------------------------


async def test_booking_worker_without_its_database_keeps_running(
    outage_redis: RedisProcess, tmp_path: Path
) -> None:
    """Every job and cron fails (the outbox sweeper runs at start-up), none ends the worker:
    it keeps polling (its heartbeat key is fresh) and stops cleanly."""
    nowhere = f"mysql+asyncmy://root@127.0.0.1:{free_port()}/appointments"
    settings = Settings(_env_file=None, database_url=nowhere)
    env = process_env(settings, outage_redis.url, WORKER_JOB_TIMEOUT_S="5")
    worker = WorkerProcess(worker_argv(settings, "booking"), env, tmp_path / "booking.log")
    worker.start()
    pool: ArqRedis = await create_pool(RedisSettings(port=outage_redis.port))
    try:
        await pool.enqueue_job("sync_appointment", "no-such-row", _queue_name=BOOKING_QUEUE)
        await wait_for(
            lambda: "sync_appointment" in worker.output() and "sweep_outbox" in worker.output(),
            20,
            "the job and the start-up sweep to fail",
        )
        assert worker.alive, worker.output()[-3000:]
        # Still taking jobs: a ping runs (and, keeping no result, leaves no key behind).
        await pool.enqueue_job("ping", _job_id="ping-after-failures", _queue_name=BOOKING_QUEUE)

        async def pinged() -> bool:
            return not await pool.exists(job_key_prefix + "ping-after-failures")

        await wait_for(pinged, 10, "a job after the failures")
        assert worker.alive, worker.output()[-3000:]
        assert worker.stop() == 0, worker.output()[-3000:]
    finally:
        worker.stop()
        await pool.aclose()
