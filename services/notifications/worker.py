"""ARQ worker of the notifications service: `arq services.notifications.worker.WorkerSettings`."""

from __future__ import annotations

from typing import Any, ClassVar

from services.notifications.jobs import notify
from shared.queue import HEALTH_CHECK_INTERVAL_S, NOTIFY_QUEUE, redis_settings
from shared.worker import ping, worker_hooks

_startup, _shutdown = worker_hooks("notifications")


class WorkerSettings:
    queue_name = NOTIFY_QUEUE
    functions: ClassVar[list[Any]] = [ping, notify]
    on_startup = _startup
    on_shutdown = _shutdown
    redis_settings = redis_settings()
    health_check_interval = HEALTH_CHECK_INTERVAL_S
    job_timeout = 30
    max_tries = 5
