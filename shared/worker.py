"""The common shape of every service's ARQ worker: DB + settings in the context, short timeouts."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from shared.config import get_settings
from shared.db.engine import Database
from shared.logging import configure_logging
from shared.queue import HEALTH_CHECK_INTERVAL_S, redis_settings

log = logging.getLogger(__name__)


def worker_hooks(service: str) -> tuple[Any, Any]:
    """on_startup/on_shutdown that create and dispose the worker's database engine."""

    async def startup(ctx: dict[str, Any]) -> None:
        settings = get_settings()
        configure_logging(f"{service}-worker", settings.log_level, settings.log_json)
        ctx["settings"] = settings
        ctx["db"] = Database(settings=settings)
        log.info("worker started", extra={"queue": service})

    async def shutdown(ctx: dict[str, Any]) -> None:
        db: Database | None = ctx.get("db")
        if db is not None:
            await db.dispose()

    return startup, shutdown


async def ping(ctx: dict[str, Any]) -> str:
    """A no-op job: proves the worker consumes its queue."""
    return "pong"


def worker_settings(
    service: str,
    queue: str,
    functions: Sequence[Any],
    cron_jobs: Sequence[Any] = (),
) -> type:
    """The ARQ `WorkerSettings` class of a service's worker: short job timeouts (a killed
    worker's job is retried after timeout + 10 s), a 10 s health check for `arq --check`."""
    startup, shutdown = worker_hooks(service)
    return type(
        "WorkerSettings",
        (),
        {
            "queue_name": queue,
            "functions": [ping, *functions],
            "cron_jobs": list(cron_jobs),
            "on_startup": startup,
            "on_shutdown": shutdown,
            "redis_settings": redis_settings(),
            "health_check_interval": HEALTH_CHECK_INTERVAL_S,
            "job_timeout": get_settings().worker_job_timeout_s,
            "max_tries": 5,
            # No result keys: the database records outcomes, and a finished job's `_job_id`
            # must be enqueueable again (sweeper, replay) instead of silently refused for 1 h.
            "keep_result": 0,
        },
    )
