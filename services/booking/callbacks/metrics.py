"""`callbacks_overdue`: callback requests still pending or assigned past their due time.

One number for all companies (a company label would grow with every tenant). Each booking
worker refreshes it every minute with `shared.jobs.worker_metrics.run_periodically`, not as an
ARQ cron: a cron job runs in whichever replica takes it from the queue, so the gauge of every
other replica would go stale. Every replica reports the same count: `max(callbacks_overdue)`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import sqlalchemy as sa
from prometheus_client import Gauge

from services.booking.callbacks.states import OVERDUE_STATUSES
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.db.types import utcnow
from shared.jobs.context import JobContext
from shared.models import CallbackRequest

REFRESH_INTERVAL_S: Final = 60.0

CALLBACKS_OVERDUE = Gauge(
    "callbacks_overdue",
    "Callback requests pending or assigned past their due time, all companies (refreshed "
    "every minute by each booking worker).",
)


async def count_overdue(db: Database, now: datetime) -> int:
    """How many callbacks are pending or assigned with `due_at` before `now`."""
    async with db.transaction(SYSTEM, write=False) as session:
        found = await session.scalar(
            sa.select(sa.func.count())
            .select_from(CallbackRequest)
            .where(
                CallbackRequest.status.in_(OVERDUE_STATUSES),
                CallbackRequest.due_at < now,
            )
        )
    return int(found or 0)


async def refresh_overdue_callbacks(ctx: JobContext) -> int:
    """Set the gauge from the database (`ctx["db"]`, the worker's); the count."""
    overdue = await count_overdue(ctx["db"], utcnow())
    CALLBACKS_OVERDUE.set(overdue)
    return overdue
