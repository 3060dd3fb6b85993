"""ARQ worker of the webhooks service: `arq services.webhooks.worker.WorkerSettings`."""

from __future__ import annotations

from shared.queue import WEBHOOKS_QUEUE
from shared.worker import worker_settings

WorkerSettings = worker_settings("webhooks", WEBHOOKS_QUEUE, [])
