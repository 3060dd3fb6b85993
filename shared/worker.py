"""The common shape of every service's ARQ worker: DB + settings in the context, short timeouts."""

from __future__ import annotations

import logging
from typing import Any

from shared.config import get_settings
from shared.db.engine import Database
from shared.logging import configure_logging

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
