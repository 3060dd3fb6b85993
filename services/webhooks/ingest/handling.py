"""The contract between the webhook worker and the per-source handlers.

A handler applies one stored `WebhookEvent` inside the job's transaction and says what became
of it. It must be idempotent: ARQ delivers at least once, the sweeper and operators replay,
and reconciliation applies the same Cal.com changes again. A handler that cannot apply a valid
payload (unknown event type id, unknown organizer, ...) returns `ignored(reason)`; a handler
that hit a passing fault (database deadlock, Cal.com unreachable) raises `TransientFailure`,
and the job retries it later with a growing delay.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from shared.config import Settings
from shared.models import WebhookEvent

# ARQ job of the webhooks worker: process_webhook_event(ctx, webhook_event_id)
PROCESS_JOB = "process_webhook_event"


def job_id(webhook_event_id: str) -> str:
    """The ARQ `_job_id` of an event's processing job (dedupes concurrent enqueues)."""
    return f"webhook:{webhook_event_id}"


@dataclass(frozen=True)
class Outcome:
    status: Literal["processed", "ignored"]
    reason: str | None = None


PROCESSED = Outcome("processed")


def ignored(reason: str) -> Outcome:
    return Outcome("ignored", reason)


class TransientFailure(Exception):
    """A passing fault: retry the event later (the job turns this into `arq.Retry`)."""


@dataclass(frozen=True)
class HandlerContext:
    redis: Redis
    settings: Settings
    now: datetime  # UTC, the job's clock (tests pass a fixed one)


Handler = Callable[[AsyncSession, WebhookEvent, HandlerContext], Awaitable[Outcome]]
