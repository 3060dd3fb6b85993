"""The mirror: apply one Cal.com booking state to our appointments, idempotently.

Webhooks (either payload shape) and reconciliation (API bookings) both end here, so one core
decides. Cal.com is the business's calendar: what happened there is the truth, with three
guards. A finished state (cancelled, completed, no-show, rescheduled away) is never revived,
so events may arrive in any order. A local change still on its way to Cal.com is not undone
by Cal.com's older copy of the same booking. And no two live appointments of one staff member
ever overlap: every write that gives a staff member time goes through the fence the booking
path uses (`shared.appointments.fence`), where a booking already in Cal.com wins and a local
one not yet there loses (cancelled as `calendar_conflict`, staff told, a callback created).

This module decides what a snapshot means for which appointment; the pieces it uses live
beside it: `snapshot` (the input and the answer), `lookup` (service, staff and customer of a
booking), `fence` (the overlap fence and eviction) and `writes` (version-checked writes and
customer notices).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.webhooks.calcom.fence import fence_move, make_room, refuse_retake
from services.webhooks.calcom.lookup import (
    customer_for_attendee,
    event_type_of,
    service_for_event_type,
    staff_for_organizer,
)
from services.webhooks.calcom.snapshot import LIVE_STATES, Applied, BookingSnapshot, State
from services.webhooks.calcom.writes import compare_and_set, notify
from services.webhooks.ingest.handling import PROCESSED, Outcome, ignored
from shared.appointments.fence import blocked_range, lock_staff
from shared.db.types import new_id, utcnow
from shared.models import LIVE_STATUSES, Appointment, Company

__all__ = ["Applied", "BookingSnapshot", "State", "apply_booking"]

Relation = Literal["same", "predecessor", "successor", "foreign"]


async def apply_booking(
    session: AsyncSession, company: Company, snap: BookingSnapshot, *, now: datetime | None = None
) -> Applied:
    """Bring our appointments in line with `snap`. The session is bound to `company`."""
    now = now or utcnow()
    if snap.state == "cancelled" and snap.rescheduled_to_uid:
        # Cal.com cancels the old booking of a reschedule; the new one carries the move.
        return Applied(PROCESSED, event_type_id=snap.event_type_id)
    row, relation = await _find(session, snap)
    if row is None:
        return await _create(session, company, snap, now)
    return await _update(session, company, row, relation, snap, now)


# Finding the appointment ---------------------------------------------------------------


async def _by_uid(session: AsyncSession, uid: str) -> Appointment | None:
    return await session.scalar(
        sa.select(Appointment)
        .where(Appointment.calcom_booking_uid == uid)
        .execution_options(populate_existing=True)
    )


async def _find(
    session: AsyncSession, snap: BookingSnapshot
) -> tuple[Appointment | None, Relation]:
    """The appointment this booking state is about, and how it relates to it (one query:
    by uid, by the uid it replaced, by our appointment id in its metadata)."""
    uids = [snap.uid, *([snap.rescheduled_from_uid] if snap.rescheduled_from_uid else [])]
    condition: sa.ColumnElement[bool] = Appointment.calcom_booking_uid.in_(uids)
    if snap.appointment_id:
        condition = sa.or_(condition, Appointment.id == snap.appointment_id)
    rows = list(
        (
            await session.execute(
                sa.select(Appointment).where(condition).execution_options(populate_existing=True)
            )
        ).scalars()
    )
    by_uid = {row.calcom_booking_uid: row for row in rows}
    if snap.uid in by_uid:
        return by_uid[snap.uid], "same"
    if snap.rescheduled_from_uid in by_uid:
        return by_uid[snap.rescheduled_from_uid], "predecessor"
    ours = next((row for row in rows if row.id == snap.appointment_id), None)
    if ours is None:
        return None, "same"
    if ours.calcom_booking_uid is None:
        return ours, "same"  # ours; the webhook beat our sync job to storing the uid
    if ours.calcom_booking_uid == snap.rescheduled_to_uid:
        return ours, "successor"
    return ours, "foreign"


# Updating an existing appointment -------------------------------------------------------


async def _update(
    session: AsyncSession,
    company: Company,
    row: Appointment,
    relation: Relation,
    snap: BookingSnapshot,
    now: datetime,
) -> Applied:
    event_type = snap.event_type_id or await event_type_of(session, row)
    unchanged = Applied(PROCESSED, row.id, event_type)
    if relation == "successor":
        return unchanged
    if relation == "foreign":
        reason = (
            f"booking {snap.uid} names appointment {row.id}, "
            f"which is linked to booking {row.calcom_booking_uid}"
        )
        return Applied(ignored(reason), row.id, event_type)
    live = row.status in LIVE_STATUSES
    if snap.state in LIVE_STATES:
        if relation == "predecessor" and not live:
            # The replaced appointment is finished; the new booking is a booking of its own.
            return await _create(session, company, snap, now, predecessor_known=True)
        outcome = await _apply_live(session, row, relation, snap, now) if live else None
    elif snap.state in ("cancelled", "rejected", "completed"):
        outcome = await _finish(session, row, relation, snap, now) if live else None
    else:
        outcome = await _no_show(session, row, snap, now)
    if relation == "same" and snap.rescheduled_from_uid:
        await _retire_predecessor(session, snap, row, now)
    if outcome is None:
        return unchanged
    return Applied(outcome, row.id, event_type, changed=True)


async def _apply_live(
    session: AsyncSession,
    row: Appointment,
    relation: Relation,
    snap: BookingSnapshot,
    now: datetime,
) -> Outcome | None:
    """Accepted/pending: confirm a pending request, move to Cal.com's time, record the sync."""
    if snap.start is None or snap.end is None:
        return None
    moved = (snap.start, snap.end) != (row.starts_at, row.ends_at)
    if moved and relation == "same" and row.sync_status != "synced":
        # Our newer local change is on its way to Cal.com: do not undo it (keep the uid).
        if row.calcom_booking_uid is None:
            await compare_and_set(session, row, bump=False, calcom_booking_uid=snap.uid)
        return None
    values: dict[str, Any] = {}
    if snap.state == "accepted" and row.status == "pending":
        values["status"] = "confirmed"
    if moved:
        blocked = await fence_move(session, row, snap, now)
        if isinstance(blocked, Outcome):
            return blocked
        values.update(blocked)
    sync: dict[str, Any] = {
        "calcom_booking_uid": snap.uid,
        "sync_status": "synced",
        "sync_error": None,
    }
    if not values:
        if row.calcom_booking_uid != snap.uid or row.sync_status != "synced":
            await compare_and_set(session, row, bump=False, synced_at=now, **sync)
        return None  # nothing the customer would notice
    old_start = row.starts_at
    await compare_and_set(session, row, synced_at=now, **sync, **values)
    if "starts_at" in values:
        if row.starts_at != old_start:
            notify(session, row, "booking_rescheduled", old_start=old_start.isoformat())
    elif values.get("status") == "confirmed":
        notify(session, row, "booking_confirmed")
    return PROCESSED


async def _finish(
    session: AsyncSession,
    row: Appointment,
    relation: Relation,
    snap: BookingSnapshot,
    now: datetime,
) -> Outcome:
    """Cancelled, rejected or completed in Cal.com: the appointment ends and frees its time
    (taking the booking's identity where `_identity` says so); only a cancellation is news
    for the customer."""
    identity = _identity(row, relation, snap, now)
    if snap.state == "completed":
        await compare_and_set(session, row, status="completed", **identity)
        return PROCESSED
    reason = _cancellation_reason(snap, "cancelled in Cal.com")
    await compare_and_set(
        session, row, status="cancelled", cancelled_at=now, cancellation_reason=reason, **identity
    )
    notify(session, row, "booking_cancelled", reason=reason)
    return PROCESSED


def _cancellation_reason(snap: BookingSnapshot, fallback: str) -> str:
    """What we record as the reason: Cal.com's own text when it sent one (within our column)."""
    rejected = snap.state == "rejected"
    return ("rejected" if rejected else (snap.cancellation_reason or fallback))[:500]


async def _no_show(
    session: AsyncSession, row: Appointment, snap: BookingSnapshot, now: datetime
) -> Outcome | None:
    """No-show flag set: no_show; cleared: back to completed (past) or confirmed (future,
    which takes the time again, so through the fence)."""
    if snap.no_show is None:
        return None
    if snap.no_show and row.status in ("confirmed", "pending", "completed"):
        await compare_and_set(session, row, status="no_show")
        notify(session, row, "booking_no_show")
        return PROCESSED
    if snap.no_show or row.status != "no_show":
        return None
    if row.ends_at > now:
        refused = await refuse_retake(session, row)
        if refused is not None:
            return refused
    await compare_and_set(session, row, status="completed" if row.ends_at <= now else "confirmed")
    return PROCESSED


async def _retire_predecessor(
    session: AsyncSession, snap: BookingSnapshot, successor: Appointment, now: datetime
) -> None:
    """A booking's successor arrived (as its own row) before the reschedule: free the old time."""
    assert snap.rescheduled_from_uid is not None
    old = await _by_uid(session, snap.rescheduled_from_uid)
    if old is None or old.id == successor.id or old.status not in LIVE_STATUSES:
        return
    await compare_and_set(session, old, status="rescheduled")
    final = "booking_rescheduled" if successor.status in LIVE_STATUSES else "booking_cancelled"
    notify(session, old, final, successor_id=successor.id)


# Creating the mirror --------------------------------------------------------------------


async def _create(
    session: AsyncSession,
    company: Company,
    snap: BookingSnapshot,
    now: datetime,
    *,
    predecessor_known: bool = False,
) -> Applied:
    """A booking we have never seen: a mirror (live), or a tombstone (finished states)."""
    if snap.state == "no_show":
        return Applied(ignored(f"no-show update for unknown booking {snap.uid}"))
    if snap.event_type_id is None:
        return Applied(ignored(f"booking {snap.uid} names no event type"))
    service = await service_for_event_type(session, snap.event_type_id)
    if service is None:
        return Applied(ignored(f"unknown event type {snap.event_type_id}"), None, None)
    event_type = snap.event_type_id
    staff = await staff_for_organizer(session, snap.organizer_email)
    if staff is None:
        return Applied(ignored(f"unknown organizer {snap.organizer_email}"), None, event_type)
    if snap.start is None or snap.end is None or snap.end <= snap.start:
        return Applied(ignored(f"booking {snap.uid} has no valid start and end"), None, event_type)
    live = snap.state in LIVE_STATES
    blocked_from, blocked_until = blocked_range(service, snap.start, snap.end)
    if live:
        await lock_staff(session, [staff.id])
        room = await make_room(session, staff.id, blocked_from, blocked_until, snap.uid, now)
        if isinstance(room, Appointment):
            # A concurrent delivery of this booking held the staff lock before us (MariaDB).
            return await _update(session, company, room, "same", snap, now)
        if room is not None:
            return Applied(room, None, event_type)
    row = Appointment(
        id=new_id(),
        company_id=company.id,
        branch_id=staff.branch_id,
        service_id=service.id,
        staff_id=staff.id,
        customer_id=await customer_for_attendee(session, company.id, snap),
        starts_at=snap.start,
        ends_at=snap.end,
        blocked_from=blocked_from,
        blocked_until=blocked_until,
        status=_initial_status(snap),
        sync_status="synced",
        synced_at=now,
        source="calcom",
        calcom_booking_uid=snap.uid,
        price=service.price,
        currency=service.currency,
    )
    if snap.state in ("cancelled", "rejected"):
        row.cancelled_at = now
        row.cancellation_reason = _cancellation_reason(snap, "cancelled")
    session.add(row)  # flushed at commit: a duplicate uid fails the try, the retry re-reads
    if snap.rescheduled_from_uid and not predecessor_known:
        await _tombstone_predecessor(session, row, snap)
    if row.status == "confirmed":
        notify(session, row, "booking_confirmed")
    return Applied(PROCESSED, row.id, event_type, changed=True)


def _initial_status(snap: BookingSnapshot) -> str:
    return {
        "accepted": "confirmed",
        "started": "confirmed",
        "pending": "pending",
        "cancelled": "cancelled",
        "rejected": "cancelled",
        "completed": "completed",
    }[snap.state]


async def _tombstone_predecessor(
    session: AsyncSession, successor: Appointment, snap: BookingSnapshot
) -> None:
    """Reschedule before create: remember the replaced uid, so its late CREATED changes nothing."""
    assert snap.rescheduled_from_uid is not None
    start = snap.previous_start or successor.starts_at
    end = snap.previous_end if snap.previous_end and snap.previous_end > start else None
    end = end or start + (successor.ends_at - successor.starts_at)
    tombstone = Appointment(
        id=new_id(),
        company_id=successor.company_id,
        branch_id=successor.branch_id,
        service_id=successor.service_id,
        staff_id=successor.staff_id,
        customer_id=successor.customer_id,
        starts_at=start,
        ends_at=end,
        blocked_from=start,
        blocked_until=end,
        status="rescheduled",
        sync_status="synced",
        synced_at=successor.synced_at,
        source="calcom",
        calcom_booking_uid=snap.rescheduled_from_uid,
        price=successor.price,
        currency=successor.currency,
    )
    session.add(tombstone)
    successor.rescheduled_from_id = tombstone.id


def _identity(
    row: Appointment, relation: Relation, snap: BookingSnapshot, now: datetime
) -> dict[str, Any]:
    """Which booking the row now is, for a change that frees its time: our own appointment
    found by metadata takes the uid; a replaced booking whose successor already ended or was
    cancelled (the reschedule not yet seen) becomes that successor, so the late reschedule
    finds it finished instead of creating it afresh."""
    if relation == "predecessor":
        values: dict[str, Any] = {"calcom_booking_uid": snap.uid, "synced_at": now}
        if snap.start is not None and snap.end is not None and snap.end > snap.start:
            values.update(starts_at=snap.start, ends_at=snap.end)
            values.update(blocked_from=snap.start, blocked_until=snap.end)
        return values
    if row.calcom_booking_uid is None:
        return {"calcom_booking_uid": snap.uid, "synced_at": now}
    return {}
