"""ARQ worker of the booking service: `arq services.booking.worker.WorkerSettings`."""

from __future__ import annotations

from typing import Any, ClassVar

from arq import cron

from services.booking.jobs import sweep_outbox, sync_appointment
from shared.queue import BOOKING_QUEUE, HEALTH_CHECK_INTERVAL_S, redis_settings
from shared.worker import ping, worker_hooks

_startup, _shutdown = worker_hooks("booking")


class WorkerSettings:
    queue_name = BOOKING_QUEUE
    functions: ClassVar[list[Any]] = [ping, sync_appointment]
    cron_jobs: ClassVar[list[Any]] = [
        cron(sweep_outbox, second={0}, unique=True, timeout=30, run_at_startup=True)
    ]
    on_startup = _startup
    on_shutdown = _shutdown
    redis_settings = redis_settings()
    health_check_interval = HEALTH_CHECK_INTERVAL_S
    job_timeout = 30
    max_tries = 5
