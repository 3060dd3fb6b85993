"""ARQ worker of the webhooks service: `arq services.webhooks.worker.WorkerSettings`."""

from __future__ import annotations

from typing import Any, ClassVar

from shared.queue import HEALTH_CHECK_INTERVAL_S, WEBHOOKS_QUEUE, redis_settings
from shared.worker import ping, worker_hooks

_startup, _shutdown = worker_hooks("webhooks")


class WorkerSettings:
    queue_name = WEBHOOKS_QUEUE
    functions: ClassVar[list[Any]] = [ping]
    on_startup = _startup
    on_shutdown = _shutdown
    redis_settings = redis_settings()
    health_check_interval = HEALTH_CHECK_INTERVAL_S
    job_timeout = 30
    max_tries = 5
