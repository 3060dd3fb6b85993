"""The fence: no two live appointments of one staff member ever overlap, Cal.com's included.

Every mirror write that gives a staff member time goes through the fence the booking path uses
(`shared.appointments.fence`: the staff lock, then the conflict query). Cal.com is the
business's calendar, so a booking already there wins, and a local appointment not yet there
loses: it is cancelled as `calendar_conflict`, staff are told (`booking_sync_failed`) and the
customer gets a callback, because nobody else would tell them their time was taken.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.webhooks.calcom.lookup import service_for_event_type, staff_for_organizer
from services.webhooks.calcom.snapshot import BookingSnapshot
from services.webhooks.calcom.writes import compare_and_set
from services.webhooks.ingest.handling import Outcome, ignored
from shared.appointments.callbacks import create_callback
from shared.appointments.fence import blocked_range, conflicts, lock_staff
from shared.jobs.outbox import stage_notification
from shared.models import Appointment, Customer, Service, Staff


class Move(TypedDict):
    """The columns a move through the fence sets: the new time, its blocked range, the host."""

    starts_at: datetime
    ends_at: datetime
    blocked_from: datetime
    blocked_until: datetime
    staff_id: str
    branch_id: str
    service_id: str


async def fence_move(
    session: AsyncSession, row: Appointment, snap: BookingSnapshot, now: datetime
) -> Move | Outcome:
    """The new time (and host) through the fence; an Outcome when it cannot be taken."""
    assert snap.start is not None and snap.end is not None
    if snap.end <= snap.start:
        return ignored(f"booking {snap.uid} ends before it starts")
    staff = await staff_for_organizer(session, snap.organizer_email) or await session.get(
        Staff, row.staff_id
    )
    service = await service_for_event_type(session, snap.event_type_id) or await session.get(
        Service, row.service_id
    )
    assert staff is not None and service is not None
    blocked_from, blocked_until = blocked_range(service, snap.start, snap.end)
    await lock_staff(session, [row.staff_id, staff.id])
    refused = await make_room(
        session, staff.id, blocked_from, blocked_until, snap.uid, now, exclude=row.id
    )
    if isinstance(refused, Appointment):  # cannot be: the mirror's lookup would have named it
        return ignored(f"booking {snap.uid} is already appointment {refused.id}")
    if refused is not None:
        return refused
    return Move(
        starts_at=snap.start,
        ends_at=snap.end,
        blocked_from=blocked_from,
        blocked_until=blocked_until,
        staff_id=staff.id,
        branch_id=staff.branch_id,
        service_id=service.id,
    )


async def refuse_retake(session: AsyncSession, row: Appointment) -> Outcome | None:
    """A future appointment taking its own time again (a no-show flag cleared): `ignored` when
    another appointment took that time meanwhile, else None. Nothing is evicted: the
    appointment is ours, not a booking Cal.com just made."""
    await lock_staff(session, [row.staff_id])
    clashes = await conflicts(session, row.staff_id, row.blocked_from, row.blocked_until, [row.id])
    taken = [c.id for c in clashes if c.kind == "appointment"]
    if taken:
        return ignored(f"overlaps appointment {taken[0]}")
    return None


async def make_room(
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
        await evict(session, loser, uid, now)
    return None


async def evict(session: AsyncSession, loser: Appointment, uid: str, now: datetime) -> None:
    """Cal.com is the calendar: a local appointment it never saw gives way to its booking."""
    await compare_and_set(
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
