"""ARQ worker of the notifications service: `python -m shared.jobs.worker_main
services.notifications.worker.WorkerSettings` (ADR 0018; `arq --check` on the same class).
Its `notify` jobs are outbox rows: after a Redis outage the booking worker enqueues the
pending ones again.

Holds the channel adapters (one `httpx.AsyncClient` for the SMS/WhatsApp gateways, timeouts on
every call) and the notification config cache for the jobs. Its shutdown first lets the sends
a stop cut off from their jobs finish and be recorded (ADR 0020), then closes the client and
the database.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

import httpx
from arq import cron, func

from services.notifications import delivery
from services.notifications.channels.registry import adapters_from_settings
from services.notifications.config_store import NAMESPACE
from services.notifications.jobs import NOTIFY_MAX_TRIES, notify, stage_reminders
from shared.config import Settings
from shared.hierarchy import ConfigCache
from shared.jobs.queue import NOTIFY_QUEUE
from shared.jobs.worker import worker_hooks, worker_settings
from shared.observability.tracing import traced_transport

_base_startup, _base_shutdown = worker_hooks("notifications")
# After the cut-off sends ended: time for their cancelled jobs to tell ARQ they run again.
JOBS_SETTLE_S: Final = 0.5


def messaging_http(settings: Settings) -> httpx.AsyncClient:
    """The worker's client for the SMS/WhatsApp gateways, every call a traced span."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.messaging_timeout_s), transport=traced_transport()
    )


async def startup(ctx: dict[str, Any]) -> None:
    await _base_startup(ctx)
    settings = ctx["settings"]
    ctx["http"] = messaging_http(settings)
    ctx["adapters"] = adapters_from_settings(settings, ctx["http"])
    ctx["notification_cache"] = ConfigCache(ctx["redis"], NAMESPACE)


async def shutdown(ctx: dict[str, Any]) -> None:
    settings: Settings | None = ctx.get("settings")
    if settings is not None and await delivery.finish_units(delivery.longest_unit_s(settings)):
        await asyncio.sleep(JOBS_SETTLE_S)
    http: httpx.AsyncClient | None = ctx.pop("http", None)
    if http is not None:
        await http.aclose()
    await _base_shutdown(ctx)


WorkerSettings = worker_settings(
    "notifications",
    NOTIFY_QUEUE,
    [func(notify, max_tries=NOTIFY_MAX_TRIES)],
    [cron(stage_reminders, second={15}, unique=True, run_at_startup=True)],
)
WorkerSettings.on_startup = startup  # type: ignore[attr-defined]
WorkerSettings.on_shutdown = shutdown  # type: ignore[attr-defined]
