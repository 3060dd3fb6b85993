"""Deliver one rendered message to one recipient exactly once: claim, send, record.

The claim is a row of `notification_deliveries`, UNIQUE (event id, channel, recipient key),
written in a short transaction of its own before anything is sent: a second run of the same
job, or a second worker racing the first, finds the row and does not send. A claim carries a
lease; a worker that dies mid-send leaves a lease that runs out, and the next try takes the row
over (Idempotency-Key / Message-ID = the row id). No transaction is held open while sending.

A stop (the worker's drain cancelling its jobs on SIGTERM) never separates a send from its
record (ADR 0020): the claim, and the send with its record, each run to their end even when the
job is cancelled meanwhile (`to_the_end`); a stop that arrives before the send gives the claim
back (`release`) and sends nothing; one that arrives during the send lets it finish and
records its outcome, then the job stops. Only a process killed outright (SIGKILL, OOM) between
the relay's acceptance and the record leaves a `sending` row whose outcome nobody knows: the
next try sends it again under the same Message-ID / Idempotency-Key (`resend`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

import sqlalchemy as sa
from prometheus_client import Counter
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from services.notifications.channels.base import (
    ChannelAdapter,
    OutgoingMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
    mask_recipient,
    recipient_key,
)
from services.notifications.deliveries.recipients import Recipient
from services.notifications.templates.rendering import RenderedMessage
from shared.config import Settings
from shared.db.engine import Database
from shared.db.types import utcnow
from shared.models import NotificationDelivery

log = logging.getLogger(__name__)

LEASE: Final = timedelta(seconds=60)
MAX_ATTEMPTS: Final = 5
FINAL: Final = frozenset({"sent", "failed", "skipped"})
# Waits before trying again to record an outcome the database refused (a restart, a dropped
# connection): a message the relay accepted must not be sent again because its record failed.
RECORD_RETRY_S: Final = (0.25, 0.5, 1.0, 2.0)
_D = NotificationDelivery
T = TypeVar("T")
# The units `to_the_end` runs, while they run: the worker's shutdown waits for them
# (`finish_units`), since a stop may end the job that started one before the unit ends.
_UNITS: set[asyncio.Future[Any]] = set()

NOTIFICATIONS = Counter(
    "notifications_total",
    "Notification deliveries by channel and outcome (sent, failed, retrying, skipped; "
    "resend: sent again after an attempt whose outcome is unknown).",
    ["channel", "outcome"],
)


async def to_the_end(work: Awaitable[T]) -> tuple[T, bool]:
    """Run `work` to its end even when the calling task is cancelled meanwhile: its result
    (or its exception) and whether a cancellation arrived, which the caller must then honour
    by raising CancelledError itself. How long it runs is `work`'s own bound (every send and
    every database call has a timeout), not the canceller's."""
    task = asyncio.ensure_future(work)
    _UNITS.add(task)
    task.add_done_callback(_UNITS.discard)
    stopped = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():  # the work itself was cancelled (the loop is closing)
                raise
            stopped = True
    if stopped and task.exception() is not None:
        # The stop wins (it was taken from the task above and must not be lost); the failure
        # (Busy, or a record that failed and logged itself) rides along as the cause.
        failure = task.exception()
        log.info("stopping; the unit ended with an error", extra={"error": repr(failure)})
        raise asyncio.CancelledError from failure
    return task.result(), stopped


def longest_unit_s(settings: Settings) -> float:
    """How long one unit may run at most: a send (SMTP: every step within smtp_timeout_s, the
    whole exchange within twice that; the gateway: messaging_timeout_s) and its record with
    its retries, plus a margin for the database round trips. What a worker's stop must wait
    beyond its drain so that no send is cut off (ADR 0020; deploy/k8s sizes the grace)."""
    send_s = max(2 * settings.smtp_timeout_s, settings.messaging_timeout_s)
    return send_s + sum(RECORD_RETRY_S) + 5.0


async def finish_units(timeout_s: float) -> int:
    """Wait (at most `timeout_s`) for the claims, sends and records still running, whose jobs
    a stop may already have given up on; how many there were. For the worker's shutdown,
    before the database and the HTTP client close under them."""
    running = [unit for unit in _UNITS if not unit.done()]
    if running:
        log.info("waiting for notification sends to finish", extra={"running": len(running)})
        await asyncio.wait(running, timeout=timeout_s)
    return len(running)


@dataclass(frozen=True)
class Notice:
    """One message of one event to one recipient."""

    company_id: str
    event_id: str
    event_type: str
    channel: str
    recipient: Recipient
    appointment_id: str | None
    callback_id: str | None

    @property
    def key(self) -> str:
        if self.recipient.address is None:  # one "skipped" row per role without an address
            return hashlib.sha256(f"{self.channel}:none:{self.recipient.kind}".encode()).hexdigest()
        return recipient_key(self.channel, self.recipient.address)

    @property
    def masked(self) -> str:
        if self.recipient.address is None:
            return f"({self.recipient.kind}: no {self.channel} address)"
        return mask_recipient(self.channel, self.recipient.address)


@dataclass(frozen=True)
class Claim:
    delivery_id: str
    attempt: int
    # The row as the claim found it, (status, attempts, lease_until); None when the claim
    # created it. `release` puts it back.
    before: tuple[str, int, datetime | None] | None = None

    @property
    def uncertain(self) -> bool:
        """The previous attempt was cut off mid-send (its lease ran out): it may have gone out."""
        return self.before is not None and self.before[0] == "sending"


class Busy(Exception):
    """Another worker holds a live claim on this delivery."""

    def __init__(self, retry_in_s: float) -> None:
        super().__init__(f"claimed by another worker for {retry_in_s:.0f} s more")
        self.retry_in_s = retry_in_s


async def claim(db: Database, notice: Notice, now: datetime) -> Claim | None:
    """The claim to send `notice` now; None when it is already settled; Busy when another
    worker's claim is live."""
    try:
        async with db.transaction(notice.company_id) as session:
            row = _D(
                company_id=notice.company_id,
                event_id=notice.event_id,
                event_type=notice.event_type,
                channel=notice.channel,
                recipient_key=notice.key,
                recipient_masked=notice.masked[:255],
                recipient_kind=notice.recipient.kind,
                language=notice.recipient.language,
                appointment_id=notice.appointment_id,
                callback_id=notice.callback_id,
                status="sending",
                attempts=1,
                lease_until=now + LEASE,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            await session.flush()
            return Claim(row.id, 1)
    except IntegrityError:
        pass
    async with db.transaction(notice.company_id) as session:
        found = await session.scalar(
            sa.select(_D).where(
                _D.event_id == notice.event_id,
                _D.channel == notice.channel,
                _D.recipient_key == notice.key,
            )
        )
        if found is None:  # the claim that refused ours was given back meanwhile (`release`)
            raise Busy(1.0)
        if found.status in FINAL:
            return None
        row = found
        if row.status == "sending" and row.lease_until is not None and row.lease_until > now:
            raise Busy((row.lease_until - now).total_seconds())
        taken = await session.execute(
            sa.update(_D)
            .where(_D.id == row.id, _D.status == row.status, _D.attempts == row.attempts)
            .values(
                status="sending",
                attempts=row.attempts + 1,
                lease_until=now + LEASE,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if getattr(taken, "rowcount", 0) != 1:
            raise Busy(1.0)
        return Claim(row.id, row.attempts + 1, (row.status, row.attempts, row.lease_until))


async def release(db: Database, notice: Notice, claim_: Claim) -> None:
    """Give back a claim on which nothing was sent (a stop arrived before the send): the row
    as it was (none, when the claim created it), so the next try neither waits for a lease
    nor takes the attempt for one whose outcome is unknown."""
    async with db.transaction(notice.company_id) as session:
        mine = (
            _D.id == claim_.delivery_id,
            _D.status == "sending",
            _D.attempts == claim_.attempt,
        )
        if claim_.before is None:
            await session.execute(
                sa.delete(_D).where(*mine).execution_options(synchronize_session=False)
            )
            return
        status, attempts, lease_until = claim_.before
        await session.execute(
            sa.update(_D)
            .where(*mine)
            .values(status=status, attempts=attempts, lease_until=lease_until, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )


async def record(
    db: Database,
    notice: Notice,
    claim_: Claim,
    status: str,
    *,
    provider_id: str | None = None,
    error: str | None = None,
) -> None:
    now = utcnow()
    async with db.transaction(notice.company_id) as session:
        await session.execute(
            sa.update(_D)
            .where(_D.id == claim_.delivery_id)
            .values(
                status=status,
                provider_message_id=provider_id,
                last_error=None if error is None else error[:2000],
                lease_until=None,
                sent_at=now if status == "sent" else None,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
    NOTIFICATIONS.labels(notice.channel, status).inc()


async def record_surely(
    db: Database,
    notice: Notice,
    claim_: Claim,
    status: str,
    *,
    provider_id: str | None = None,
    error: str | None = None,
) -> None:
    """`record`, tried again for a few seconds while the database refuses (connection refused
    or lost, no pooled connection in time, SQLite locked): the outcome of a send must outlive
    a database blink (else the lease runs out and the message goes out again)."""
    for wait_s in (*RECORD_RETRY_S, None):
        try:
            await record(db, notice, claim_, status, provider_id=provider_id, error=error)
            return
        except (OperationalError, InterfaceError, PoolTimeout, OSError, TimeoutError) as exc:
            if wait_s is None:
                log.error(
                    "notification outcome not recorded",
                    extra={
                        "delivery_id": claim_.delivery_id,
                        "channel": notice.channel,
                        "status": status,
                        "error": type(exc).__name__,
                    },
                )
                raise
            log.warning(
                "notification outcome not recorded yet; trying again",
                extra={"delivery_id": claim_.delivery_id, "error": type(exc).__name__},
            )
            await asyncio.sleep(wait_s)


async def deliver(
    db: Database,
    adapter: ChannelAdapter | None,
    notice: Notice,
    message: RenderedMessage | None,
    now: datetime,
    *,
    final: bool = False,
    failure: str | None = None,
) -> str:
    """Send `notice` unless it is settled; the outcome: sent, failed, skipped, retrying, done
    (settled before), or Busy raised. Transient failures are `retrying` until the last
    attempt, then `failed`. `failure`: the message could not be made (a template stopped by
    its budget, say): recorded as failed with that reason, nothing sent.

    Cancelled (a worker's stop), it still ends cleanly and then raises CancelledError: before
    the send, the claim is given back and nothing goes out; once the send began, it finishes
    and its outcome is recorded (ADR 0020)."""
    claimed, stopping = await to_the_end(claim(db, notice, now))
    if claimed is None:
        if stopping:
            raise asyncio.CancelledError
        return "done"
    if stopping:
        await to_the_end(release(db, notice, claimed))
        raise asyncio.CancelledError
    outcome, stopping = await to_the_end(
        _send_and_record(db, adapter, notice, message, claimed, final=final, failure=failure)
    )
    if stopping:
        log.info(
            "notification delivered before stopping",
            extra={"delivery_id": claimed.delivery_id, "channel": notice.channel},
        )
        raise asyncio.CancelledError
    return outcome


async def _send_and_record(
    db: Database,
    adapter: ChannelAdapter | None,
    notice: Notice,
    message: RenderedMessage | None,
    claimed: Claim,
    *,
    final: bool,
    failure: str | None,
) -> str:
    """The send and its record: one unit that `deliver` never cuts in two."""
    if failure is not None:
        await record_surely(db, notice, claimed, "failed", error=failure)
        return "failed"
    if notice.recipient.address is None or message is None:
        await record_surely(db, notice, claimed, "skipped", error="no address for this channel")
        return "skipped"
    if adapter is None:
        await record_surely(
            db, notice, claimed, "failed", error=f"channel {notice.channel} is not configured"
        )
        return "failed"
    if claimed.uncertain:
        # The attempt before was cut off between its send and its record (a killed process):
        # it may have gone out. Same Message-ID / Idempotency-Key, so it is recognisably the
        # same message (a gateway drops it; a mail client shows one).
        NOTIFICATIONS.labels(notice.channel, "resend").inc()
        log.warning(
            "notification sent again after an attempt with unknown outcome",
            extra={
                "delivery_id": claimed.delivery_id,
                "channel": notice.channel,
                "attempt": claimed.attempt,
            },
        )
    outgoing = OutgoingMessage(
        channel=notice.channel,
        to=notice.recipient.address,
        subject=message.subject,
        body=message.body,
        idempotency_key=claimed.delivery_id,
    )
    try:
        result = await adapter.send(outgoing)
    except PermanentDeliveryError as exc:
        await record_surely(db, notice, claimed, "failed", error=str(exc) or type(exc).__name__)
        return "failed"
    except TransientDeliveryError as exc:
        status = "failed" if final or claimed.attempt >= MAX_ATTEMPTS else "retrying"
        await record_surely(db, notice, claimed, status, error=str(exc) or type(exc).__name__)
        log.warning(
            "notification delivery failed",
            extra={"channel": notice.channel, "attempt": claimed.attempt, "error": str(exc)},
        )
        return status
    await record_surely(db, notice, claimed, "sent", provider_id=result.provider_id)
    return "sent"
