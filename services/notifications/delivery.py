"""Deliver one rendered message to one recipient exactly once: claim, send, record.

The claim is a row of `notification_deliveries`, UNIQUE (event id, channel, recipient key),
written in a short transaction of its own before anything is sent: a second run of the same
job, or a second worker racing the first, finds the row and does not send. A claim carries a
lease; a worker that dies mid-send leaves a lease that runs out, and the next try of the job
takes the row over (the provider's `Idempotency-Key` / the email's Message-ID is the row id, so
a gateway that dedupes sees the same message). No transaction is held open while sending.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import sqlalchemy as sa
from prometheus_client import Counter
from sqlalchemy.exc import IntegrityError

from services.notifications.channels.base import (
    ChannelAdapter,
    OutgoingMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
    mask_recipient,
    recipient_key,
)
from services.notifications.recipients import Recipient
from services.notifications.templates import RenderedMessage
from shared.db.engine import Database
from shared.db.types import utcnow
from shared.models import NotificationDelivery

log = logging.getLogger(__name__)

LEASE: Final = timedelta(seconds=60)
MAX_ATTEMPTS: Final = 5
FINAL: Final = frozenset({"sent", "failed", "skipped"})
_D = NotificationDelivery

NOTIFICATIONS = Counter(
    "notifications_total",
    "Notification deliveries by channel and outcome (sent, failed, retrying, skipped).",
    ["channel", "outcome"],
)


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
        if found is None or found.status in FINAL:
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
        return Claim(row.id, row.attempts + 1)


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
    its budget, say): recorded as failed with that reason, nothing sent."""
    claimed = await claim(db, notice, now)
    if claimed is None:
        return "done"
    if failure is not None:
        await record(db, notice, claimed, "failed", error=failure)
        return "failed"
    if notice.recipient.address is None or message is None:
        await record(db, notice, claimed, "skipped", error="no address for this channel")
        return "skipped"
    if adapter is None:
        await record(
            db, notice, claimed, "failed", error=f"channel {notice.channel} is not configured"
        )
        return "failed"
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
        await record(db, notice, claimed, "failed", error=str(exc) or type(exc).__name__)
        return "failed"
    except TransientDeliveryError as exc:
        status = "failed" if final or claimed.attempt >= MAX_ATTEMPTS else "retrying"
        await record(db, notice, claimed, status, error=str(exc) or type(exc).__name__)
        log.warning(
            "notification delivery failed",
            extra={"channel": notice.channel, "attempt": claimed.attempt, "error": str(exc)},
        )
        return status
    await record(db, notice, claimed, "sent", provider_id=result.provider_id)
    return "sent"
