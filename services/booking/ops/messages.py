"""The last messages of a company as its customers and staff would read them, for the ops page.

The deliveries are the company's own `notification_deliveries` rows (a statement scoped to the
company); their text comes from the development outbox `make run` starts (tools/dev_outbox.py,
DEV_OUTBOX_URL), asked for exactly those delivery ids, so one company never sees another's
messages. Without an outbox (production) or when it does not answer within OUTBOX_TIMEOUT_S,
the deliveries are listed without their text.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.scoped import scoped
from shared.models import NotificationDelivery

log = logging.getLogger(__name__)

OUTBOX_TIMEOUT_S = 1.0
MAX_MESSAGES = 50
# Messages never sent (no address for the channel) have nothing to show.
SHOWN_STATUSES = ("sending", "sent", "retrying", "failed")


@dataclass(frozen=True)
class SentMessage:
    """One delivery with what the outbox caught of it (subject and body None when unknown)."""

    channel: str
    recipient_masked: str
    event_type: str
    status: str
    subject: str | None
    body: str | None
    received_at: datetime  # UTC: when the outbox caught it, else when it was sent or claimed


@dataclass(frozen=True)
class _Caught:
    subject: str | None
    body: str
    received_at: datetime | None


async def recent_messages(
    session: AsyncSession,
    company_id: str,
    outbox_url: str | None,
    *,
    limit: int = 10,
    http: httpx.AsyncClient | None = None,
) -> list[SentMessage]:
    """The company's `limit` latest deliveries, newest first, with their caught text."""
    limit = max(1, min(limit, MAX_MESSAGES))
    statement = (
        sa.select(
            NotificationDelivery.id,
            NotificationDelivery.channel,
            NotificationDelivery.recipient_masked,
            NotificationDelivery.event_type,
            NotificationDelivery.status,
            NotificationDelivery.sent_at,
            NotificationDelivery.created_at,
        )
        .where(NotificationDelivery.status.in_(SHOWN_STATUSES))
        .order_by(NotificationDelivery.created_at.desc(), NotificationDelivery.id.desc())
        .limit(limit)
    )
    rows = (await session.execute(scoped(statement, company_id))).all()
    ids = [row.id for row in rows]
    caught = await _caught(outbox_url, ids, http) if outbox_url and ids else {}
    messages = []
    for row in rows:
        found = caught.get(row.id)
        received = found.received_at if found and found.received_at else None
        messages.append(
            SentMessage(
                channel=row.channel,
                recipient_masked=row.recipient_masked,
                event_type=row.event_type,
                status=row.status,
                subject=found.subject if found else None,
                body=found.body if found else None,
                received_at=received or row.sent_at or row.created_at,
            )
        )
    return messages


async def _caught(
    outbox_url: str, ids: list[str], http: httpx.AsyncClient | None
) -> dict[str, _Caught]:
    """What the outbox holds of `ids`, by delivery id (the newest of each); {} when it does
    not answer in time or answers nonsense."""
    url = f"{outbox_url.rstrip('/')}/messages"
    params = {"ids": ",".join(ids), "limit": str(min(200, 2 * len(ids)))}
    try:
        async with asyncio.timeout(OUTBOX_TIMEOUT_S):
            if http is None:
                # Loopback in development: no proxy from the environment in the way.
                async with httpx.AsyncClient(trust_env=False) as client:
                    response = await client.get(url, params=params, timeout=OUTBOX_TIMEOUT_S)
            else:
                response = await http.get(url, params=params, timeout=OUTBOX_TIMEOUT_S)
        response.raise_for_status()
        items = response.json()["items"]
    except (httpx.HTTPError, TimeoutError, ValueError, KeyError, TypeError) as exc:
        log.warning("dev outbox unavailable", extra={"url": url, "error": repr(exc)})
        return {}
    wanted = set(ids)
    found: dict[str, _Caught] = {}
    for item in items if isinstance(items, list) else []:
        caught = _parse(item, wanted)
        if caught is not None and caught[0] not in found:  # newest first
            found[caught[0]] = caught[1]
    return found


def _parse(item: Any, wanted: set[str]) -> tuple[str, _Caught] | None:
    if not isinstance(item, dict) or item.get("delivery_id") not in wanted:
        return None
    subject, body = item.get("subject"), item.get("body")
    if not isinstance(body, str) or not (subject is None or isinstance(subject, str)):
        return None
    try:
        received = datetime.fromisoformat(str(item.get("received_at")))
    except ValueError:
        received = None
    if received is not None and received.tzinfo is None:
        received = None  # an instant without its offset is no instant
    return str(item["delivery_id"]), _Caught(subject, body, received)
