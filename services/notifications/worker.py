"""ARQ worker of the notifications service: `arq services.notifications.worker.WorkerSettings`."""

from __future__ import annotations

from services.notifications.jobs import notify
from shared.queue import NOTIFY_QUEUE
from shared.worker import worker_settings

WorkerSettings = worker_settings("notifications", NOTIFY_QUEUE, [notify])
