"""ARQ worker of the booking service: `arq services.booking.worker.WorkerSettings`."""

from __future__ import annotations

from arq import cron

from services.booking.jobs import reap_idempotency_keys, sweep_outbox, sync_appointment
from shared.queue import BOOKING_QUEUE
from shared.worker import worker_settings

WorkerSettings = worker_settings(
    "booking",
    BOOKING_QUEUE,
    [sync_appointment],
    [
        cron(sweep_outbox, second={0}, unique=True, run_at_startup=True),
        cron(reap_idempotency_keys, minute={17}, second={30}, unique=True),
    ],
)
