"""Jobs of the notifications worker: `notify` (one booking or callback event from the outbox)
and the reminder cron.

`notify` is idempotent by outbox id and by delivery row (see `delivery`). Notices of one
appointment or callback go out in the order the changes happened: a job whose predecessors
(earlier `notify` rows of the same aggregate) are still pending waits for them with a growing
`Retry`, and only on its last try sends regardless (late beats never).

A worker's stop cancels `notify` between or during its deliveries: the one under way ends
cleanly (sent and recorded, or its claim given back; `delivery.deliver`), the rest wait, and
the job ends cancelled; ARQ runs it again and the settled deliveries are skipped (ADR 0020).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Final

import sqlalchemy as sa
from arq import Retry

from services.notifications.catalog.event_types import CHANNELS
from services.notifications.channels.base import ChannelAdapter
from services.notifications.configs.queries import effective_config
from services.notifications.deliveries import delivery, event_data, recipients
from services.notifications.reminders import service as reminders
from services.notifications.templates import service as template_store
from services.notifications.templates.budget import in_thread
from services.notifications.templates.rendering import RenderedMessage, render
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.db.types import utcnow
from shared.errors import InvalidInput
from shared.hierarchy.cache import ConfigCache
from shared.jobs import outbox
from shared.jobs.context import JobContext
from shared.jobs.queue import NOTIFY_QUEUE
from shared.jobs.tasks import TaskRegistry
from shared.models import OutboxEvent
from shared.observability.logging import correlation_id_var

log = logging.getLogger(__name__)

NOTIFY_MAX_TRIES: Final = 12
MAX_DEFER_S: Final = 60.0

tasks = TaskRegistry(queue=NOTIFY_QUEUE)


class NotifyContext(JobContext, total=False):
    """The notifications worker's context (worker.py): the channel adapters by channel name
    and the notification config cache."""

    adapters: dict[str, ChannelAdapter]
    notification_cache: ConfigCache


def retry_delay(attempt: int) -> float:
    """2**attempt seconds, capped at a minute, plus up to 25 % jitter."""
    return min(2.0 ** max(attempt, 1), MAX_DEFER_S) * (1.0 + random.random() * 0.25)


@dataclass(frozen=True)
class Plan:
    notice: delivery.Notice
    message: RenderedMessage | None
    failure: str | None = None  # why the message could not be rendered (a failed delivery)


async def _predecessor_pending(db: Database, event: OutboxEvent) -> bool:
    """Is an earlier notice of the same appointment/callback still unsent?"""
    if event.aggregate_id is None:
        return False
    # The event's own company (an aggregate never spans companies); SYSTEM for a row of none.
    async with db.transaction(event.company_id or SYSTEM, write=False) as session:
        found = await session.scalar(
            sa.select(OutboxEvent.id)
            .where(
                OutboxEvent.aggregate_id == event.aggregate_id,
                OutboxEvent.queue == NOTIFY_QUEUE,
                OutboxEvent.status == "pending",
                OutboxEvent.id != event.id,
                sa.or_(
                    OutboxEvent.created_at < event.created_at,
                    sa.and_(OutboxEvent.created_at == event.created_at, OutboxEvent.id < event.id),
                ),
            )
            .limit(1)
        )
    return found is not None


async def plan_event(
    db: Database, cache: ConfigCache | None, event: OutboxEvent
) -> list[Plan] | None:
    """Every (channel, recipient) the event's effective configs name, rendered; None when the
    event has nothing (left) to tell."""
    company_id = event.company_id
    if company_id is None:
        return None
    async with db.transaction(company_id, write=False) as session:
        data = await event_data.load(session, event.payload)
        if data is None:
            return None
        plans: list[Plan] = []
        templates: dict[tuple[str, str], tuple[str | None, str, str]] = {}
        # A reminder is staged per channel (its offset is configured per channel).
        only = event.payload.get("channel")
        for channel in (only,) if only in CHANNELS else CHANNELS:
            effective = await effective_config(session, cache, data.chain, data.event_type, channel)
            config = effective["config"]
            if not config["enabled"]:
                continue
            for recipient in recipients.resolve(config, channel, data):
                message = None
                failure = None
                if recipient.address is not None:
                    slot = (channel, recipient.language)
                    if slot not in templates:  # one read per channel and language
                        templates[slot] = await template_store.effective_template(
                            session, data.event_type, channel, recipient.language
                        )
                    subject, body, _source = templates[slot]
                    try:  # off the event loop, stopped by the render budget (ADR 0013)
                        message = await in_thread(
                            render,
                            data.event_type,
                            channel,
                            recipient.language,
                            data.raw,
                            body=config.get("template_override") or body,
                            subject=subject,
                        )
                    except InvalidInput as exc:  # TemplateError, its budget, bad data
                        failure = f"template not rendered ({exc.code}): {exc.detail}"
                        log.warning(
                            "notification template not rendered",
                            extra={"event_type": data.event_type, "channel": channel},
                        )
                notice = delivery.Notice(
                    company_id=data.company_id,
                    event_id=f"outbox:{event.id}",
                    event_type=data.event_type,
                    channel=channel,
                    recipient=recipient,
                    appointment_id=data.appointment_id,
                    callback_id=data.callback_id,
                )
                plans.append(Plan(notice, message, failure))
    return plans


async def _finish(db: Database, outbox_id: str, error: str | None = None) -> None:
    async with db.transaction(SYSTEM) as session:
        await outbox.mark(session, outbox_id, "done", error)


@tasks.task(max_tries=NOTIFY_MAX_TRIES)
async def notify(ctx: NotifyContext, outbox_id: str) -> str:
    """Tell everyone the event's configs name, over their channels, once."""
    db = ctx["db"]
    job_try = ctx.get("job_try") or 1
    last_try = job_try >= NOTIFY_MAX_TRIES
    async with db.transaction(SYSTEM, write=False) as session:
        event = await session.get(OutboxEvent, outbox_id)
        if event is None or event.status == "done":
            return "skipped"
        session.expunge(event)
    if event.correlation_id and not correlation_id_var.get():
        correlation_id_var.set(event.correlation_id)  # the booking's id on this job's logs
    if not last_try and await _predecessor_pending(db, event):
        raise Retry(defer=retry_delay(job_try))
    plans = await plan_event(db, ctx.get("notification_cache"), event)
    if plans is None:
        await _finish(db, outbox_id)
        return "nothing_to_send"
    adapters = ctx.get("adapters", {})
    outcomes: list[str] = []
    busy_for = 0.0
    now = utcnow()
    for plan in plans:
        try:
            outcome = await delivery.deliver(
                db,
                adapters.get(plan.notice.channel),
                plan.notice,
                plan.message,
                now,
                final=last_try,
                failure=plan.failure,
            )
        except delivery.Busy as exc:
            busy_for = max(busy_for, exc.retry_in_s)
            outcome = "busy"
        outcomes.append(outcome)
    if ("retrying" in outcomes or "busy" in outcomes) and not last_try:
        raise Retry(defer=max(retry_delay(job_try), busy_for))
    await _finish(db, outbox_id)
    return ",".join(sorted(set(outcomes))) or "no_recipients"


@tasks.cron(second={15}, unique=True, run_at_startup=True)
async def stage_reminders(ctx: NotifyContext) -> int:
    """Cron (every minute, unique): stage the reminders that are due."""
    db = ctx["db"]
    staged = await reminders.stage_due(
        db, ctx.get("notification_cache"), now=utcnow(), pool=ctx.get("redis")
    )
    return staged
