"""The mirror: apply one Cal.com booking state to our appointments, idempotently.

Webhooks (either payload shape) and reconciliation (API bookings) both end here, so one core
decides. Cal.com is the business's calendar: what happened there is the truth, with three
guards. A finished state (cancelled, completed, no-show, rescheduled away) is never revived,
so events may arrive in any order. A local change still on its way to Cal.com is not undone
by Cal.com's older copy of the same booking. And no two live appointments of one staff member
ever overlap: every write that gives a staff member time goes through the booking path's
fence (`slot_guard`), where a booking already in Cal.com wins and a local one not yet there
loses (cancelled as `calendar_conflict`, staff told, a callback created).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.callbacks import create_callback
from services.booking.customers import upsert_customer
from services.booking.events import stage_notification
from services.booking.slot_guard import conflicts, lock_staff
from services.webhooks.handling import PROCESSED, Outcome, TransientFailure, ignored
from shared.calcom.models import CalcomBooking
from shared.db.types import new_id, utcnow
from shared.fields import normalize_phone
from shared.models import LIVE_STATUSES, Appointment, Company, Customer, Service, Staff

State = Literal["accepted", "pending", "cancelled", "rejected", "completed", "started", "no_show"]
LIVE_STATES = frozenset({"accepted", "pending", "started"})
API_STATES: Mapping[str, State] = {
    "accepted": "accepted",
    "pending": "pending",
    "awaiting_host": "pending",
    "cancelled": "cancelled",
    "rejected": "rejected",
}


@dataclass(frozen=True)
class BookingSnapshot:
    """One Cal.com booking as it is now, normalised from a webhook or an API booking."""

    uid: str
    state: State
    start: datetime | None = None
    end: datetime | None = None
    event_type_id: int | None = None
    organizer_email: str | None = None
    attendee_name: str | None = None
    attendee_email: str | None = None
    attendee_phone: str | None = None
    attendee_time_zone: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    rescheduled_from_uid: str | None = None  # this booking replaced that one
    rescheduled_to_uid: str | None = None  # this (cancelled) booking was replaced by that one
    previous_start: datetime | None = None  # the replaced booking's times, when sent
    previous_end: datetime | None = None
    no_show: bool | None = None
    cancellation_reason: str | None = None

    @property
    def appointment_id(self) -> str | None:
        """Our appointment id: every booking we create carries it in its metadata."""
        return self.metadata.get("appointment_id") or None

    @classmethod
    def from_calcom(cls, booking: CalcomBooking) -> BookingSnapshot | None:
        """The snapshot of an API booking (reconciliation); None for a status we do not know."""
        state = API_STATES.get(booking.status)
        if state is None:
            return None
        return cls(
            uid=booking.uid,
            state=state,
            start=booking.start,
            end=booking.end,
            event_type_id=booking.event_type_id,
            organizer_email=booking.host_emails[0] if booking.host_emails else None,
            attendee_name=booking.attendee_name,
            attendee_email=booking.attendee_email,
            attendee_phone=booking.attendee_phone,
            attendee_time_zone=booking.attendee_time_zone,
            metadata=dict(booking.metadata),
            rescheduled_from_uid=booking.rescheduled_from_uid,
            rescheduled_to_uid=booking.rescheduled_to_uid,
            cancellation_reason=booking.cancellation_reason,
        )


@dataclass(frozen=True)
class Applied:
    """What applying a snapshot did; `event_type_id` names the slots cache to invalidate."""

    outcome: Outcome
    appointment_id: str | None = None
    event_type_id: int | None = None
    changed: bool = False


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
    event_type = snap.event_type_id or await _event_type_of(session, row)
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
    elif snap.state in ("cancelled", "rejected"):
        outcome = await _cancel(session, row, relation, snap, now) if live else None
    elif snap.state == "completed":
        outcome = await _complete(session, row, relation, snap, now) if live else None
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
            await _cas(session, row, bump=False, calcom_booking_uid=snap.uid)
        return None
    values: dict[str, Any] = {}
    if snap.state == "accepted" and row.status == "pending":
        values["status"] = "confirmed"
    if moved:
        blocked = await _fence_move(session, row, snap, now)
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
            await _cas(session, row, bump=False, synced_at=now, **sync)
        return None  # nothing the customer would notice
    old_start = row.starts_at
    await _cas(session, row, synced_at=now, **sync, **values)
    if "starts_at" in values:
        if row.starts_at != old_start:
            _notify(session, row, "booking_rescheduled", old_start=old_start.isoformat())
    elif values.get("status") == "confirmed":
        _notify(session, row, "booking_confirmed")
    return PROCESSED


async def _fence_move(
    session: AsyncSession, row: Appointment, snap: BookingSnapshot, now: datetime
) -> dict[str, Any] | Outcome:
    """The new time (and host) through the fence; an Outcome when it cannot be taken."""
    assert snap.start is not None and snap.end is not None
    if snap.end <= snap.start:
        return ignored(f"booking {snap.uid} ends before it starts")
    staff = await _staff(session, snap.organizer_email) or await session.get(Staff, row.staff_id)
    service = await _service(session, snap.event_type_id) or await session.get(
        Service, row.service_id
    )
    assert staff is not None and service is not None
    blocked_from, blocked_until = _blocked(service, snap.start, snap.end)
    await lock_staff(session, [row.staff_id, staff.id])
    refused = await _make_room(
        session, staff.id, blocked_from, blocked_until, snap.uid, now, exclude=row.id
    )
    if isinstance(refused, Appointment):  # cannot be: `_find` would have named it
        return ignored(f"booking {snap.uid} is already appointment {refused.id}")
    if refused is not None:
        return refused
    return {
        "starts_at": snap.start,
        "ends_at": snap.end,
        "blocked_from": blocked_from,
        "blocked_until": blocked_until,
        "staff_id": staff.id,
        "branch_id": staff.branch_id,
        "service_id": service.id,
    }


async def _cancel(
    session: AsyncSession,
    row: Appointment,
    relation: Relation,
    snap: BookingSnapshot,
    now: datetime,
) -> Outcome:
    rejected = snap.state == "rejected"
    reason = "rejected" if rejected else (snap.cancellation_reason or "cancelled in Cal.com")
    await _cas(
        session,
        row,
        status="cancelled",
        cancelled_at=now,
        cancellation_reason=reason[:500],
        **_identity(row, relation, snap, now),
    )
    _notify(session, row, "booking_cancelled", reason=reason[:500])
    return PROCESSED


async def _complete(
    session: AsyncSession,
    row: Appointment,
    relation: Relation,
    snap: BookingSnapshot,
    now: datetime,
) -> Outcome:
    await _cas(session, row, status="completed", **_identity(row, relation, snap, now))
    return PROCESSED


async def _no_show(
    session: AsyncSession, row: Appointment, snap: BookingSnapshot, now: datetime
) -> Outcome | None:
    """No-show flag set: no_show; cleared: back to completed (past) or confirmed (future,
    which takes the time again, so through the fence)."""
    if snap.no_show is None:
        return None
    if snap.no_show and row.status in ("confirmed", "pending", "completed"):
        await _cas(session, row, status="no_show")
        _notify(session, row, "booking_no_show")
        return PROCESSED
    if snap.no_show or row.status != "no_show":
        return None
    if row.ends_at > now:
        await lock_staff(session, [row.staff_id])
        clashes = await conflicts(
            session, row.staff_id, row.blocked_from, row.blocked_until, [row.id]
        )
        taken = [c.id for c in clashes if c.kind == "appointment"]
        if taken:
            return ignored(f"overlaps appointment {taken[0]}")
    await _cas(session, row, status="completed" if row.ends_at <= now else "confirmed")
    return PROCESSED


async def _retire_predecessor(
    session: AsyncSession, snap: BookingSnapshot, successor: Appointment, now: datetime
) -> None:
    """A booking's successor arrived (as its own row) before the reschedule: free the old time."""
    assert snap.rescheduled_from_uid is not None
    old = await _by_uid(session, snap.rescheduled_from_uid)
    if old is None or old.id == successor.id or old.status not in LIVE_STATUSES:
        return
    await _cas(session, old, status="rescheduled")
    final = "booking_rescheduled" if successor.status in LIVE_STATUSES else "booking_cancelled"
    _notify(session, old, final, successor_id=successor.id)


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
    service = await _service(session, snap.event_type_id)
    if service is None:
        return Applied(ignored(f"unknown event type {snap.event_type_id}"), None, None)
    event_type = snap.event_type_id
    staff = await _staff(session, snap.organizer_email)
    if staff is None:
        return Applied(ignored(f"unknown organizer {snap.organizer_email}"), None, event_type)
    if snap.start is None or snap.end is None or snap.end <= snap.start:
        return Applied(ignored(f"booking {snap.uid} has no valid start and end"), None, event_type)
    live = snap.state in LIVE_STATES
    blocked_from, blocked_until = _blocked(service, snap.start, snap.end)
    if live:
        await lock_staff(session, [staff.id])
        room = await _make_room(session, staff.id, blocked_from, blocked_until, snap.uid, now)
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
        customer_id=await _customer(session, company.id, snap),
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
        row.cancellation_reason = (
            "rejected" if snap.state == "rejected" else snap.cancellation_reason or "cancelled"
        )[:500]
    session.add(row)  # flushed at commit: a duplicate uid fails the try, the retry re-reads
    if snap.rescheduled_from_uid and not predecessor_known:
        await _tombstone_predecessor(session, row, snap)
    if row.status == "confirmed":
        _notify(session, row, "booking_confirmed")
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


# The fence ------------------------------------------------------------------------------


async def _make_room(
    session: AsyncSession,
    staff_id: str,
    blocked_from: datetime,
    blocked_until: datetime,
    uid: str,
    now: datetime,
    exclude: str | None = None,
) -> Outcome | Appointment | None:
    """Under the staff lock: None when the range can be taken (local appointments not yet in
    Cal.com are evicted), `ignored` when it overlaps an appointment already in Cal.com, or
    the appointment that already mirrors this very booking (a concurrent delivery's, seen
    here without a query of its own). Time off does not refuse a mirror: the booking exists
    in the calendar all the same."""
    clashes = await conflicts(
        session, staff_id, blocked_from, blocked_until, [exclude] if exclude else ()
    )
    ids = [c.id for c in clashes if c.kind == "appointment"]
    if not ids:
        return None
    rows = list(
        (
            await session.execute(
                sa.select(Appointment)
                .where(Appointment.id.in_(ids))
                .order_by(Appointment.id)
                .execution_options(populate_existing=True)
            )
        ).scalars()
    )
    twin = next((r for r in rows if r.calcom_booking_uid == uid), None)
    if twin is not None:
        return twin
    in_calendar = [r for r in rows if r.sync_status == "synced"]
    if in_calendar:
        return ignored(f"overlaps appointment {in_calendar[0].id}")
    for loser in rows:
        await _evict(session, loser, uid, now)
    return None


async def _evict(session: AsyncSession, loser: Appointment, uid: str, now: datetime) -> None:
    """Cal.com is the calendar: a local appointment it never saw gives way to its booking."""
    await _cas(
        session,
        loser,
        status="cancelled",
        cancelled_at=now,
        cancellation_reason="calendar_conflict",
        sync_status="failed",
        sync_error=f"overlaps Cal.com booking {uid}",
    )
    stage_notification(
        session,
        company_id=loser.company_id,
        event_type="booking_sync_failed",
        aggregate_id=loser.id,
        payload={
            "appointment_id": loser.id,
            "version": loser.version,
            "calcom_booking_uid": uid,
            "reason": "calendar_conflict",
        },
    )
    customer = (
        await session.execute(
            sa.select(Customer.phone, Customer.name).where(Customer.id == loser.customer_id)
        )
    ).first()
    if customer is not None and customer.phone:
        await create_callback(
            session,
            company_id=loser.company_id,
            phone_number=customer.phone,
            reason=f"Appointment {loser.id} was cancelled: the time was taken in the calendar.",
            customer_name=customer.name,
            branch_id=loser.branch_id,
            service_id=loser.service_id,
            staff_id=loser.staff_id,
            now=now,
            priority="high",
        )


def _blocked(service: Service, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    return (
        start - timedelta(minutes=service.buffer_before_minutes),
        end + timedelta(minutes=service.buffer_after_minutes),
    )


# Lookups and writes ---------------------------------------------------------------------


async def _service(session: AsyncSession, event_type_id: int | None) -> Service | None:
    if event_type_id is None:
        return None
    return await session.scalar(
        sa.select(Service)
        .where(Service.calcom_event_type_id == event_type_id)
        .order_by(Service.active.desc(), Service.id)
        .limit(1)
    )


async def _event_type_of(session: AsyncSession, row: Appointment) -> int | None:
    return await session.scalar(
        sa.select(Service.calcom_event_type_id).where(Service.id == row.service_id)
    )


async def _staff(session: AsyncSession, email: str | None) -> Staff | None:
    """The organizer: by `calcom_user_email`, else by `email` (either case)."""
    if not email:
        return None
    forms = {email, email.lower()}
    for column in (Staff.calcom_user_email, Staff.email):
        staff = await session.scalar(
            sa.select(Staff)
            .where(column.in_(forms))
            .order_by(Staff.active.desc(), Staff.id)
            .limit(1)
        )
        if staff is not None:
            return staff
    return None


def _phone(raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        return normalize_phone(raw)
    except ValueError:
        return None


async def _customer(session: AsyncSession, company_id: str, snap: BookingSnapshot) -> str:
    """The attendee's customer: by phone (E.164) when given, else by e-mail; created if new."""
    phone = _phone(snap.attendee_phone)
    email = snap.attendee_email
    name = (snap.attendee_name or email or "Cal.com guest")[:200]
    if phone is not None:
        found = await session.scalar(sa.select(Customer.id).where(Customer.phone == phone))
        if found is not None:
            return str(found)
        return await upsert_customer(
            session,
            company_id=company_id,
            phone=phone,
            name=name,
            email=email,
            known_id=None,
            known_name=None,
        )
    if email:
        found = await session.scalar(
            sa.select(Customer.id)
            .where(Customer.email.in_({email, email.lower()}))
            .order_by(Customer.created_at, Customer.id)
            .limit(1)
        )
        if found is not None:
            return str(found)
    customer = Customer(company_id=company_id, name=name, phone=None, email=email)
    session.add(customer)
    await session.flush()  # the unit of work would not order it before the appointment
    return customer.id


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


async def _cas(
    session: AsyncSession, row: Appointment, *, bump: bool = True, **values: Any
) -> None:
    """Compare-and-set on the version, as the booking path does: a concurrent local change
    makes this a TransientFailure, and the retry re-reads."""
    if bump:
        values["version"] = row.version + 1
    result = await session.execute(
        sa.update(Appointment)
        .where(Appointment.id == row.id, Appointment.version == row.version)
        .values(updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        raise TransientFailure(f"appointment {row.id} changed concurrently; retry")
    await session.refresh(row)


def _notify(session: AsyncSession, row: Appointment, event_type: str, **extra: Any) -> None:
    """A customer notice for a change made in Cal.com; no `sync_appointment`: it is there."""
    stage_notification(
        session,
        company_id=row.company_id,
        event_type=event_type,
        aggregate_id=row.id,
        payload={"appointment_id": row.id, "version": row.version, "source": "calcom", **extra},
    )
