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
from typing import Final

import httpx

from services.notifications.channels.registry import adapters_from_settings
from services.notifications.configs.queries import NAMESPACE
from services.notifications.deliveries import delivery
from services.notifications.jobs import NotifyContext, tasks
from shared.config import Settings
from shared.hierarchy.cache import ConfigCache
from shared.jobs.worker import ServiceWorker, worker_shutdown, worker_startup
from shared.observability.tracing import traced_transport

# After the cut-off sends ended: time for their cancelled jobs to tell ARQ they run again.
JOBS_SETTLE_S: Final = 0.5


def messaging_http(settings: Settings) -> httpx.AsyncClient:
    """The worker's client for the SMS/WhatsApp gateways, every call a traced span."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.messaging_timeout_s), transport=traced_transport()
    )


async def startup(ctx: NotifyContext) -> None:
    await worker_startup(ctx)
    settings = ctx["settings"]
    ctx["http"] = messaging_http(settings)
    ctx["adapters"] = adapters_from_settings(settings, ctx["http"])
    ctx["notification_cache"] = ConfigCache(ctx["redis"], NAMESPACE)


async def shutdown(ctx: NotifyContext) -> None:
    settings = ctx.get("settings")
    if settings is not None and await delivery.finish_units(delivery.longest_unit_s(settings)):
        await asyncio.sleep(JOBS_SETTLE_S)
    http = ctx.pop("http", None)
    if http is not None:
        await http.aclose()
    await worker_shutdown(ctx)


class WorkerSettings(ServiceWorker):
    """`notify` (outbox rows of the booking and webhooks services) and the reminder cron."""

    service = "notifications"
    tasks = tasks
    on_startup = startup
    on_shutdown = shutdown
