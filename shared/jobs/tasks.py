"""`@tasks.task` / `@tasks.cron`: a service's ARQ jobs, declared where they are written.

    tasks = TaskRegistry(queue=BOOKING_QUEUE)

    @tasks.task(max_tries=SYNC_MAX_TRIES)
    async def sync_appointment(ctx: BookingContext, outbox_id: str) -> str: ...

    @tasks.cron(second={0}, run_at_startup=True)
    async def sweep_outbox(ctx: JobContext) -> int: ...

The decorators return the function unchanged (jobs stay callable in tests) and record it for
the service's `WorkerSettings` (shared.jobs.worker.ServiceWorker), which traces and counts
each run. A job's name is its function's name, as ARQ gives it: outbox rows and webhook
replays enqueue by that name, so renaming a job function renames the job.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from arq import cron, func
from arq.cron import CronJob
from arq.typing import OptionType, SecondsTimedelta, WeekdayOptionType, WorkerCoroutine
from arq.worker import Function

Job = TypeVar("Job", bound=Callable[..., Awaitable[Any]])


class TaskRegistry:
    """The jobs and crons of one ARQ queue, in the order they were declared."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        # A job without options stays a bare coroutine function, as ARQ lists it.
        self.functions: list[Function | WorkerCoroutine] = []
        self.cron_jobs: list[CronJob] = []

    def task(
        self,
        *,
        max_tries: int | None = None,
        timeout: SecondsTimedelta | None = None,
        keep_result: SecondsTimedelta | None = None,
    ) -> Callable[[Job], Job]:
        """Register a job; options left None take the worker's (ServiceWorker)."""

        def register(function: Job) -> Job:
            coroutine = _coroutine(function)
            entry: Function | WorkerCoroutine = coroutine
            if max_tries is not None or timeout is not None or keep_result is not None:
                entry = func(
                    coroutine, max_tries=max_tries, timeout=timeout, keep_result=keep_result
                )
            # Registered again (a module imported anew): the new one replaces the old one.
            name = coroutine.__qualname__
            self.functions = [f for f in self.functions if _name(f) != name] + [entry]
            return function

        return register

    def cron(
        self,
        *,
        month: OptionType = None,
        day: OptionType = None,
        weekday: WeekdayOptionType = None,
        hour: OptionType = None,
        minute: OptionType = None,
        second: OptionType = 0,
        run_at_startup: bool = False,
        unique: bool = True,
        timeout: SecondsTimedelta | None = None,
        max_tries: int = 1,
        keep_result: float = 0,
    ) -> Callable[[Job], Job]:
        """Register a cron (ARQ's `cron` and its defaults: one try, `unique` across replicas);
        its job name is `cron:<function name>`."""

        def register(function: Job) -> Job:
            name = f"cron:{function.__qualname__}"
            self.cron_jobs = [c for c in self.cron_jobs if c.name != name]
            self.cron_jobs.append(
                cron(
                    _coroutine(function),
                    month=month,
                    day=day,
                    weekday=weekday,
                    hour=hour,
                    minute=minute,
                    second=second,
                    run_at_startup=run_at_startup,
                    unique=unique,
                    timeout=timeout,
                    max_tries=max_tries,
                    keep_result=keep_result,
                )
            )
            return function

        return register


def _name(entry: Function | WorkerCoroutine) -> str:
    return entry.name if isinstance(entry, Function) else entry.__qualname__


def _coroutine(function: Callable[..., Awaitable[Any]]) -> WorkerCoroutine:
    # ARQ types the context as a plain dict; ours is a TypedDict of the same dict.
    return cast(WorkerCoroutine, function)
