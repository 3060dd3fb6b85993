"""The timeline of a failed booking: one time-ordered list merging the appointment, its
modifications, outbox rows, Cal.com calls, webhook events and notifications.

Every source is read in ONE query for a whole page of failures (ids, uids and correlation ids
collected first), so a page costs the same number of queries however many failures it holds;
each query is capped (newest rows kept) and each timeline keeps its newest MAX_ITEMS entries.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import (
    ApiCallLog,
    AppointmentModification,
    NotificationDelivery,
    OutboxEvent,
    WebhookEvent,
)

MAX_FAILURES = 100
MAX_ITEMS = 50
# Rows one timeline source may return for a whole page (newest kept when a page is busier).
SOURCE_CAP = MAX_FAILURES * MAX_ITEMS
# Events that precede a booking (Retell's call_started) still belong to its timeline.
LOOKBACK = timedelta(hours=1)
FailureKind = Literal["sync_failed", "booking_error"]


@dataclass(frozen=True)
class TimelineItem:
    at: datetime
    source: str  # booking | failure | modification | outbox | calcom | webhook | notification
    summary: str
    status: str | None
    details: dict[str, Any]


@dataclass
class FailedBooking:
    kind: FailureKind
    id: str  # the appointment's id (sync_failed) or the failure record's id
    occurred_at: datetime
    error: str
    error_code: str
    correlation_id: str | None
    call_id: str | None
    appointment_id: str | None
    source: str | None
    http_status: int | None
    service_id: str | None
    staff_id: str | None
    start: datetime | None
    timeline: list[TimelineItem] = field(default_factory=list)
    timeline_truncated: bool = False
    # What links rows to this failure (filled while the page is assembled).
    correlation_ids: set[str] = field(default_factory=set)
    booking_uid: str | None = None
    created_at: datetime | None = None


async def attach_timelines(
    session: AsyncSession, company_id: str, failures: list[FailedBooking]
) -> None:
    by_appointment = {f.appointment_id: f for f in failures if f.appointment_id}
    await _outbox(session, company_id, by_appointment)  # first: it yields correlation ids
    await _modifications(session, by_appointment)
    await _notifications(session, by_appointment)
    await _calcom_calls(session, company_id, failures)
    await _webhooks(session, company_id, failures)
    for failed in failures:
        failed.timeline.append(
            TimelineItem(
                failed.occurred_at,
                "failure",
                f"Booking failed: {failed.error_code}"
                if failed.kind == "booking_error"
                else "Cal.com sync given up",
                "error",
                {"error": failed.error, "http_status": failed.http_status},
            )
        )
        _finish(failed)


_SOURCE_ORDER = {
    s: i
    for i, s in enumerate(
        ("webhook", "calcom", "booking", "modification", "outbox", "notification", "failure")
    )
}


def _finish(failed: FailedBooking) -> None:
    """Sort the timeline (ties: the order things happen within one request) and cap it."""
    items = sorted(failed.timeline, key=lambda i: (i.at, _SOURCE_ORDER.get(i.source, 9)))
    failed.timeline_truncated = len(items) > MAX_ITEMS
    failed.timeline = items[-MAX_ITEMS:]


async def _outbox(
    session: AsyncSession, company_id: str, by_appointment: dict[str, FailedBooking]
) -> None:
    if not by_appointment:
        return
    rows = await session.execute(
        sa.select(
            OutboxEvent.aggregate_id,
            OutboxEvent.created_at,
            OutboxEvent.updated_at,
            OutboxEvent.job_name,
            OutboxEvent.queue,
            OutboxEvent.status,
            OutboxEvent.attempts,
            OutboxEvent.last_error,
            OutboxEvent.correlation_id,
            OutboxEvent.payload,
        )
        .where(OutboxEvent.aggregate_id.in_(list(by_appointment)))
        .order_by(OutboxEvent.created_at.desc())
        .limit(SOURCE_CAP)
    )
    for aggregate_id, at, updated, job, queue, status, attempts, error, cid, payload in rows:
        failed = by_appointment[aggregate_id]
        if cid:
            failed.correlation_ids.add(cid)
            failed.correlation_id = cid  # newest first: ends as the oldest row's, the booking's
        event_type = payload.get("event_type") if isinstance(payload, dict) else None
        failed.timeline.append(
            TimelineItem(
                at,
                "outbox",
                f"{job} ({event_type})" if event_type else job,
                status,
                {
                    "queue": queue.rsplit(":", 1)[-1],
                    "attempts": attempts,
                    "last_error": error,
                    "updated_at": updated,
                    "correlation_id": cid,
                },
            )
        )


async def _modifications(session: AsyncSession, by_appointment: dict[str, FailedBooking]) -> None:
    if not by_appointment:
        return
    rows = await session.scalars(
        sa.select(AppointmentModification)
        .where(AppointmentModification.appointment_id.in_(list(by_appointment)))
        .order_by(AppointmentModification.created_at.desc())
        .limit(SOURCE_CAP)
    )
    for row in rows:
        by_appointment[row.appointment_id].timeline.append(
            TimelineItem(
                row.created_at,
                "modification",
                f"{row.modification_type} by {row.actor}",
                "within_policy" if row.within_policy else "outside_policy",
                {
                    "old_start": row.old_starts_at,
                    "new_start": row.new_starts_at,
                    "fee": f"{row.fee:.2f}",
                    "currency": row.currency,
                    "reason": row.reason,
                },
            )
        )


async def _notifications(session: AsyncSession, by_appointment: dict[str, FailedBooking]) -> None:
    if not by_appointment:
        return
    rows = await session.scalars(
        sa.select(NotificationDelivery)
        .where(NotificationDelivery.appointment_id.in_(list(by_appointment)))
        .order_by(NotificationDelivery.created_at.desc())
        .limit(SOURCE_CAP)
    )
    for row in rows:
        assert row.appointment_id is not None
        by_appointment[row.appointment_id].timeline.append(
            TimelineItem(
                row.created_at,
                "notification",
                f"{row.event_type} via {row.channel} to {row.recipient_masked}",
                row.status,
                {"attempts": row.attempts, "last_error": row.last_error, "sent_at": row.sent_at},
            )
        )


def _booking_paths(uid: str) -> list[str]:
    return [f"/v2/bookings/{uid}", f"/v2/bookings/{uid}/cancel", f"/v2/bookings/{uid}/reschedule"]


def _oldest(failures: Iterable[FailedBooking]) -> datetime:
    return min((f.created_at or f.occurred_at) for f in failures) - LOOKBACK


async def _calcom_calls(
    session: AsyncSession, company_id: str, failures: list[FailedBooking]
) -> None:
    by_cid: dict[str, list[FailedBooking]] = defaultdict(list)
    by_path: dict[str, FailedBooking] = {}
    for failed in failures:
        for cid in failed.correlation_ids:
            by_cid[cid].append(failed)
        if failed.booking_uid:
            by_path.update(dict.fromkeys(_booking_paths(failed.booking_uid), failed))
    if not by_cid and not by_path:
        return
    linked = [ApiCallLog.correlation_id.in_(list(by_cid))] if by_cid else []
    if by_path:
        linked.append(ApiCallLog.endpoint.in_(list(by_path)))
    metadata_id = ApiCallLog.request_payload["metadata"]["appointment_id"].as_string()
    rows = await session.execute(
        sa.select(
            ApiCallLog.created_at,
            ApiCallLog.service,
            ApiCallLog.method,
            ApiCallLog.endpoint,
            ApiCallLog.response_status,
            ApiCallLog.duration_ms,
            ApiCallLog.error_message,
            ApiCallLog.correlation_id,
            metadata_id,
        )
        .where(
            ApiCallLog.created_at >= _oldest(failures),
            sa.or_(*linked),
        )
        .order_by(ApiCallLog.created_at.desc())
        .limit(SOURCE_CAP)
    )
    for at, service, method, endpoint, status, duration, error, cid, about in rows:
        owners = {id(f): f for f in by_cid.get(cid or "", [])}
        if endpoint in by_path:
            owners[id(by_path[endpoint])] = by_path[endpoint]
        for failed in owners.values():
            if about and failed.appointment_id and about != failed.appointment_id:
                continue  # the same call (correlation id) booked another appointment too
            ok = status is not None and 200 <= status < 300
            failed.timeline.append(
                TimelineItem(
                    at,
                    service,
                    f"{method} {endpoint} -> {status if status is not None else 'no answer'}",
                    "ok" if ok else "error",
                    {"response_status": status, "duration_ms": duration, "error": error},
                )
            )


async def _webhooks(session: AsyncSession, company_id: str, failures: list[FailedBooking]) -> None:
    cids = {cid for f in failures for cid in f.correlation_ids}
    uids = {f.booking_uid: f for f in failures if f.booking_uid}
    appointments = {f.appointment_id: f for f in failures if f.appointment_id}
    body = WebhookEvent.payload
    wrapped_uid = body["payload"]["uid"].as_string()
    flat_uid = sa.func.coalesce(body["uid"].as_string(), body["bookingUid"].as_string())
    about = body["payload"]["metadata"]["appointment_id"].as_string()
    linked = []
    if cids:
        linked.append(WebhookEvent.correlation_id.in_(list(cids)))
    if uids:
        linked += [wrapped_uid.in_(list(uids)), flat_uid.in_(list(uids))]
    if appointments:
        linked.append(about.in_(list(appointments)))
    if not linked:
        return
    rows = await session.execute(
        sa.select(
            WebhookEvent.created_at,
            WebhookEvent.source,
            WebhookEvent.event_type,
            WebhookEvent.status,
            WebhookEvent.attempts,
            WebhookEvent.error_message,
            WebhookEvent.processed_at,
            WebhookEvent.correlation_id,
            wrapped_uid,
            flat_uid,
            about,
        )
        .where(
            WebhookEvent.created_at >= _oldest(failures),
            sa.or_(*linked),
        )
        .order_by(WebhookEvent.created_at.desc())
        .limit(SOURCE_CAP)
    )
    by_cid: dict[str, list[FailedBooking]] = defaultdict(list)
    for failed in failures:
        for cid in failed.correlation_ids:
            by_cid[cid].append(failed)
    for at, source, event_type, status, attempts, error, done, cid, uid1, uid2, appt in rows:
        owners = {id(f): f for f in by_cid.get(cid or "", [])}
        for key, index in ((uid1, uids), (uid2, uids), (appt, appointments)):
            if key and key in index:
                owners[id(index[key])] = index[key]
        for failed in owners.values():
            failed.timeline.append(
                TimelineItem(
                    at,
                    "webhook",
                    f"{source} {event_type}",
                    status,
                    {"attempts": attempts, "error": error, "processed_at": done},
                )
            )
