"""ARQ worker of the webhooks service: `python -m shared.jobs.worker_main
services.webhooks.worker.WorkerSettings` (ADR 0018; `arq --check` on the same class).

Jobs: `process_webhook_event` (enqueued by ingestion, replay and the sweeper). Crons: the
sweeper every minute, reconciliation with Cal.com every five, retention nightly at 03:17 UTC;
all `unique`, so one run per tick across all replicas. The context gets one shared httpx
client for Cal.com. After a Redis outage every pending event is enqueued again at once
(`on_reconnect`): Redis may have come back empty, and `webhook_events` is the record.
"""

from __future__ import annotations

import httpx

from services.webhooks.calcom.reconciliation import reconcile_calcom
from services.webhooks.jobs import PENDING_GRACE, sweep_webhook_events, tasks
from services.webhooks.retention import enforce_retention
from shared.db.types import utcnow
from shared.jobs.context import JobContext
from shared.jobs.worker import ServiceWorker, worker_shutdown, worker_startup
from shared.security.outbound import outbound_client

# Per-request timeouts are the client's own (CalcomClient.timeout_s); this is the backstop.
HTTP_TIMEOUT = httpx.Timeout(10.0, connect=3.0)
# ARQ sleeps `poll_delay` between queue reads even when jobs wait: its 0.5 s default alone
# would eat the 500 ms acknowledgement-to-applied target. 20 cheap reads a second instead.
POLL_DELAY_S = 0.05

# The crons written outside jobs.py (their modules stay free of the worker's registry).
tasks.cron(minute=set(range(0, 60, 5)), second={35}, unique=True)(reconcile_calcom)
# DSGVO retention (RETENTION_DAYS): nightly, off-peak, one replica per tick.
tasks.cron(hour={3}, minute={17}, second={0}, unique=True)(enforce_retention)


async def startup(ctx: JobContext) -> None:
    await worker_startup(ctx)
    # Reconciliation calls each company's Cal.com: a tenant-set URL, so a guarded client.
    ctx["http"] = outbound_client(ctx["settings"], timeout=HTTP_TIMEOUT)


async def shutdown(ctx: JobContext) -> None:
    http = ctx.get("http")
    if http is not None:
        await http.aclose()
    await worker_shutdown(ctx)


async def resend_events(ctx: JobContext) -> int:
    """After a Redis outage: the sweeper without its grace (every pending event, however
    recent; a job still queued keeps its place, ARQ refuses its id twice)."""
    return await sweep_webhook_events(ctx, now=utcnow() + PENDING_GRACE)


class WorkerSettings(ServiceWorker):
    """Webhook events, their sweeper, Cal.com reconciliation, retention."""

    service = "webhooks"
    tasks = tasks
    on_startup = startup
    on_shutdown = shutdown
    on_reconnect = resend_events
    poll_delay = POLL_DELAY_S
