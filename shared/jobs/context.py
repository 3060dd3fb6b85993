"""The typed context every ARQ job, cron and hook of our workers receives.

ARQ hands each run a plain dict: the worker's `ctx` setting, what `on_startup` put in, and the
per-run keys. `JobContext` names them so that mypy checks every `ctx[...]`; a service whose
startup adds more keys subclasses it (booking's `BookingContext`, notifications'
`NotifyContext`). Every key is optional (`total=False`): hooks run before any job key exists,
and tests call jobs with the few keys they need.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from threading import Thread
from typing import TypedDict
from wsgiref.simple_server import WSGIServer

import httpx
from arq.connections import ArqRedis

from shared.config import Settings
from shared.db.engine import Database


class JobContext(TypedDict, total=False):
    """The keys of an ARQ worker's context, in the order they appear."""

    # The worker's `ctx` setting (ServiceWorker): read by worker_startup and start_metrics.
    service: str
    queue_name: str
    # ARQ's own connection, set before on_startup (connect timeout only; see worker_redis).
    redis: ArqRedis
    # on_startup (shared.jobs.worker.worker_startup): the settings and the database engine.
    settings: Settings
    db: Database
    # The service's outbound client (Cal.com or the messaging gateways), made on startup.
    http: httpx.AsyncClient
    # shared.jobs.worker_metrics: the /metrics server and the periodic refresh tasks.
    metrics_server: tuple[WSGIServer, Thread] | None
    metrics_tasks: list[asyncio.Task[None]]
    # Per run, from ARQ.
    job_id: str
    job_try: int
    enqueue_time: datetime
    score: int
