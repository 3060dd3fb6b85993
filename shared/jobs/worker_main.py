"""Our workers' entry point:
`python -m shared.jobs.worker_main services.<name>.worker.WorkerSettings`.

An ARQ `Worker` that outlives its dependencies and drains on a stop signal (ADR 0018):

- Redis down never ends the process. ARQ's poll loop lets a connection error escape (exit 1);
  here a failed poll is logged once ("Redis unavailable"), retried with backoff (0.5 s doubling
  to 10 s), and its return is logged once with the outage's length. The connection pool is
  created without a ping, so a worker also starts while Redis is down. Crons go on from the
  next tick after reconnecting; the settings' `on_reconnect(ctx)` runs once after each outage
  (the sweepers: Redis may have come back empty, and the database is the record of every job).
- A job whose database is down fails inside ARQ as before (retried by its own `Retry` or the
  sweepers); nothing in the poll loop touches the database.
- SIGTERM/SIGINT: no new jobs, running jobs finish for up to WORKER_DRAIN_TIMEOUT_S (25 s),
  then the rest is cancelled (ARQ runs those again later, elsewhere); exit 0. A second Ctrl-C
  (SIGINT after SIGINT) cancels at once; other repeats do not shorten the drain (a terminal's
  Ctrl-C reaches the runner's children, and the runner sends SIGTERM as well). ARQ's own
  handler cancels running jobs immediately.

`--check` runs ARQ's health check of this worker (as `arq --check`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from signal import Signals
from typing import Any, Final, cast

from arq.utils import import_string
from arq.worker import Worker, check_health, get_kwargs
from redis.exceptions import RedisError

from shared.config import Settings, get_settings
from shared.jobs.context import JobContext
from shared.jobs.worker_redis import lazy_pool
from shared.observability.logging import configure_logging
from shared.web.health import DEPENDENCY_UP

log = logging.getLogger("shared.jobs.worker_main")

# What a dependency blinking looks like: redis-py's errors (ConnectionError, TimeoutError, a
# server still loading), socket errors, and our own time limits (TimeoutError is an OSError).
REDIS_FAULTS: Final = (RedisError, OSError)
FIRST_DELAY_S: Final = 0.5
MAX_DELAY_S: Final = 10.0
SETTLE_AFTER_CANCEL_S: Final = 5.0  # cancelled jobs record their cancellation within this
CLOSE_BUDGET_S: Final = 2.0  # Redis round trips of the shutdown, at most
MAX_MISSED_TICKS: Final = 100_000  # a per-second cron over a day of outage

Hook = Callable[[JobContext], Awaitable[object]]


class Outage:
    """One dependency's state as the poll loop sees it: logs the first failure and the return,
    not every failed try, and hands out the backoff delays."""

    def __init__(
        self,
        name: str,
        first_delay_s: float = FIRST_DELAY_S,
        max_delay_s: float = MAX_DELAY_S,
        service: str = "worker",
    ) -> None:
        self.name = name
        # dependency_up{service="<name>-worker", dependency="redis"}, as the APIs' readiness
        self.gauge = DEPENDENCY_UP.labels(service, name.lower())
        self.gauge.set(1)
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self.since: float | None = None  # monotonic start of the current outage
        self.failures = 0
        self.outages = 0  # how many outages this process has seen end

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException) -> float:
        """A poll failed: the delay before the next one (doubling, capped)."""
        self.noticed(exc, "poll")
        self.failures += 1
        delay: float = self.first_delay_s * 2.0 ** min(self.failures - 1, 30)
        return min(delay, self.max_delay_s)

    def noticed(self, exc: BaseException, where: str) -> None:
        """A failure (of a poll, or of a job's round trips, which do not set the pace):
        logged when it starts an outage, else at debug level only."""
        if self.since is None:
            self.since = time.monotonic()
            self.failures = 0
            self.gauge.set(0)
            log.warning(
                "%s unavailable; retrying with backoff (%g s doubling to %g s)",
                self.name,
                self.first_delay_s,
                self.max_delay_s,
                extra={"dependency": self.name, "error": _describe(exc), "where": where},
            )
        else:
            log.debug("%s still unavailable (%s): %s", self.name, where, _describe(exc))

    def recovered(self) -> float | None:
        """Record a success; the outage's length in seconds when one just ended, else None."""
        if self.since is None:
            return None
        lasted = time.monotonic() - self.since
        self.since = None
        self.outages += 1
        self.gauge.set(1)
        log.warning(
            "%s reachable again after %.1f s (%d failed tries)",
            self.name,
            lasted,
            self.failures,
            extra={"dependency": self.name, "outage_s": round(lasted, 3)},
        )
        return lasted


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


class ResilientWorker(Worker):
    """ARQ's worker with a poll loop that survives Redis outages and a draining stop."""

    def __init__(
        self,
        *args: Any,
        drain_timeout_s: float = 25.0,
        on_reconnect: Hook | None = None,
        app_settings: Settings | None = None,
        service: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("handle_signals", True)  # off only in tests (the loop is theirs)
        kwargs["job_completion_wait"] = 0  # so ARQ registers `handle_sig`, ours
        super().__init__(*args, **kwargs)
        self.drain_timeout_s = drain_timeout_s
        self.on_reconnect = on_reconnect
        self.app_settings = app_settings or get_settings()
        self.redis_outage = Outage("Redis", service=f"{service}-worker" if service else "worker")
        self.draining: asyncio.Task[None] | None = None
        self.stop_signal: Signals | None = None
        self._wake = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()

    # --- the main loop ------------------------------------------------------------------------

    async def main(self) -> None:
        if self._pool is None:
            assert self.redis_settings is not None
            self._pool = lazy_pool(
                self.redis_settings,
                self.app_settings,
                queue=self.queue_name,
                job_serializer=self.job_serializer,
                job_deserializer=self.job_deserializer,
                expires_extra_ms=self.expires_extra_ms,
            )
        log.info(
            "starting worker for %d functions: %s",
            len(self.functions),
            ", ".join(self.functions),
            extra={"queue": self.queue_name},
        )
        self.ctx["redis"] = self.pool
        if self.on_startup:
            await self.on_startup(self.ctx)
        await self._serve()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while self.draining is None:
            started = loop.time()
            try:
                await self._poll_iteration()
            except REDIS_FAULTS as exc:
                await self._sleep(self.redis_outage.failed(exc))
                continue
            if self.redis_outage.recovered() is not None:
                self._after_reconnect()
            if self.burst and await self._burst_done():
                return
            await self._sleep(max(0.0, self.poll_delay_s - (loop.time() - started)))
        await self.draining

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake up for a stop signal (the drain then takes over)."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _burst_done(self) -> bool:
        """ARQ's burst mode, as in `Worker.main` (tests; our deployments never use it)."""
        if 0 <= self.max_burst_jobs <= self._jobs_started():
            await asyncio.gather(*self.tasks.values())
            return True
        if await self.pool.zcard(self.queue_name) == 0:
            await asyncio.gather(*self.tasks.values())
            return True
        return False

    def _after_reconnect(self) -> None:
        """Run the settings' `on_reconnect` in the background (never in the poll loop)."""
        if self.on_reconnect is None:
            return
        hook = self.on_reconnect

        async def run() -> None:
            try:
                await hook(cast(JobContext, self.ctx))
            except Exception as exc:  # the regular crons cover it on their next tick
                log.warning("reconnect hook failed", extra={"error": _describe(exc)})

        task = asyncio.get_running_loop().create_task(run(), name="worker:on_reconnect")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def heart_beat(self) -> None:
        if self.redis_outage.down:  # the first poll that reached Redis again
            self._resume_crons(datetime.now(tz=self.timezone))
            self._last_health_check = 0  # the heartbeat key (`arq --check`) at once
        await super().heart_beat()

    def _resume_crons(self, now: datetime) -> None:
        """A cron whose ticks passed during the outage runs once, under the id of its last
        missed tick (the same on every replica, so a `unique` cron still runs once), and then
        on schedule; ARQ alone would enqueue every missed tick, one per poll."""
        for cron_job in self.cron_jobs:
            missed = cron_job.next_run
            if missed is None or missed >= now:
                continue
            for _ in range(MAX_MISSED_TICKS):
                cron_job.calculate_next(missed)
                if cron_job.next_run is None or cron_job.next_run > now:
                    break
                missed = cron_job.next_run
            cron_job.next_run = missed

    # --- jobs: a Redis fault must not leak a job slot, nor end the loop -----------------------

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """ARQ's `start_jobs`, one job at a time, giving back the slot it took for a job whose
        start failed on Redis (ARQ would keep it: ten such failures and the worker would
        never take a job again)."""
        for job_id_b in job_ids:
            job_id = job_id_b.decode()
            before = self.tasks.get(job_id)
            try:
                await super().start_jobs([job_id_b])
            except REDIS_FAULTS:
                # Only its Redis round trips raise, after the slot (semaphore and counter)
                # was taken and before the job's task exists.
                if self.tasks.get(job_id) is before:
                    self.job_counter -= 1
                    self.sem.release()
                raise

    async def run_job(self, job_id: str, score: int) -> None:
        """ARQ's `run_job`; a Redis fault before or after the job (reading it, recording its
        end) is an outage, not a crash: the job runs again once its in-progress key expires,
        or, with Redis' data lost, when a sweeper re-enqueues it from the database."""
        try:
            await super().run_job(job_id, score)
        except REDIS_FAULTS as exc:
            self.redis_outage.noticed(exc, f"job {job_id}")

    # --- stopping -----------------------------------------------------------------------------

    def handle_sig(self, signum: Signals) -> None:
        sig = Signals(signum)
        if self.draining is not None:
            # A second Ctrl-C is a person who does not want to wait. Anything else is not: a
            # terminal's Ctrl-C reaches `appointments run` and its children, and the runner
            # then sends SIGTERM too.
            if sig == Signals.SIGINT and self.stop_signal == Signals.SIGINT:
                running = self._running()
                log.warning("SIGINT received again: cancelling %d running jobs now", running)
                self._cancel_running()
            else:
                log.info("%s received: already draining", sig.name)
            return
        self.stop_signal = sig
        self.allow_pick_jobs = False
        log.info(
            "%s received: taking no new jobs, %d running may finish within %g s",
            sig.name,
            self._running(),
            self.drain_timeout_s,
            extra={"jobs_complete": self.jobs_complete, "jobs_failed": self.jobs_failed},
        )
        self.draining = self.loop.create_task(self._drain(sig), name="worker:drain")
        self._wake.set()

    def _running(self) -> int:
        return sum(not task.done() for task in self.tasks.values())

    def _cancel_running(self) -> None:
        for task in self.tasks.values():
            if not task.done():
                task.cancel()

    async def _drain(self, sig: Signals) -> None:
        deadline = time.monotonic() + self.drain_timeout_s
        # Jobs may still start after the signal (a batch already read): wait for all of them.
        while (remaining := deadline - time.monotonic()) > 0:
            running = [task for task in self.tasks.values() if not task.done()]
            if not running:
                break
            await asyncio.wait(running, timeout=remaining)
        left = self._running()
        if left:
            log.warning(
                "%d jobs still running after %g s: cancelling them (they will run again)",
                left,
                self.drain_timeout_s,
            )
            self._cancel_running()
            pending = [task for task in self.tasks.values() if not task.done()]
            await asyncio.wait(pending, timeout=SETTLE_AFTER_CANCEL_S)
        log.info(
            "stopped on %s: %d jobs complete, %d failed, %d retried",
            sig.name,
            self.jobs_complete,
            self.jobs_failed,
            self.jobs_retried,
        )
        if self.on_stop:
            self.on_stop(sig)

    async def close(self) -> None:
        """ARQ's close, which must not fail on a Redis that is down: the heartbeat key is
        dropped if Redis answers in time (else it expires), then on_shutdown and the pool."""
        if not self._pool:
            return
        tasks: Sequence[asyncio.Task[Any]] = [t for t in self.tasks.values() if not t.done()]
        if tasks:  # only after a cancelled main task (ARQ's path); the drain leaves none
            await asyncio.wait(tasks, timeout=SETTLE_AFTER_CANCEL_S)
        for task in list(self._background):
            task.cancel()
        try:
            async with asyncio.timeout(CLOSE_BUDGET_S):
                await self.pool.delete(self.health_check_key)
        except REDIS_FAULTS as exc:
            log.info("heartbeat key not removed (Redis): %s", _describe(exc))
        if self.on_shutdown:
            await self.on_shutdown(self.ctx)
        with contextlib.suppress(*REDIS_FAULTS):
            await self.pool.aclose(close_connection_pool=True)
        self._pool = None


def create_worker(settings_cls: Any, settings: Settings | None = None, **kwargs: Any) -> Worker:
    """Our worker for a service's `WorkerSettings` (a shared.jobs.worker.ServiceWorker)."""
    settings = settings or get_settings()
    options: dict[str, Any] = {**get_kwargs(settings_cls), **kwargs}
    return ResilientWorker(
        drain_timeout_s=settings.worker_drain_timeout_s,
        on_reconnect=getattr(settings_cls, "on_reconnect", None),
        app_settings=settings,
        service=getattr(settings_cls, "service", None),
        **options,
    )


USAGE = "usage: python -m shared.jobs.worker_main [--check] services.<name>.worker.WorkerSettings"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    args = [arg for arg in args if arg != "--check"]
    if len(args) != 1 or args[0].startswith("-"):
        print(USAGE, file=sys.stderr)
        return 2
    settings_cls = import_string(args[0])
    settings = get_settings()
    service = getattr(settings_cls, "service", None)
    configure_logging(
        f"{service}-worker" if service else "worker", settings.log_level, settings.log_json
    )
    if check:
        return check_health(settings_cls)
    create_worker(settings_cls, settings).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
