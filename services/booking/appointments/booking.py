"""Booking an appointment: validate against the schedule, fence overlaps, write, stage events.

One call is one transaction (the caller's). Service, branch, staff, company, customer and the
reference candidates are read once (`context`) and passed down; free slots are computed once.
Statements on the happy path with a given staff member: context (1), staff lock (1, MariaDB
only), overlap check (1), customer write (0-1), appointment insert (1), outbox insert (1).
"Any staff" reads the offer instead of the context and adds the qualified staff (1) and their
calendars (1), from which the staff member is chosen (`slots.choose_staff`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.appointments import metrics as booking_metrics
from services.booking.appointments.context import BookingContext, load_context, load_offer
from services.booking.appointments.slots import (
    alternatives_for,
    blocked_range,
    calcom_allows,
    check_schedule,
    choose_staff,
    slot_taken,
)
from services.booking.scheduling.availability import Slot
from shared.appointments.customers import upsert_customer
from shared.appointments.events import stage_appointment_events
from shared.appointments.fence import conflicts, lock_staff
from shared.db.rows import insert_new
from shared.db.types import utcnow
from shared.errors import InvalidInput
from shared.models import Appointment
from shared.security.references import new_reference

REFERENCE_CANDIDATES = 3  # checked in the context statement; all taken -> the model redraws


@dataclass(frozen=True)
class BookingRequest:
    service_id: str
    start: datetime
    customer_name: str
    customer_phone: str
    staff_id: str | None = None
    branch_id: str | None = None
    customer_email: str | None = None
    notes: str | None = None
    source: str = "api"
    call_id: str | None = None
    actor: str = "api"
    # Whether an existing customer's name/e-mail may be changed: only a call from that
    # customer's own number (services/booking/customers.py).
    update_customer: bool = False


@dataclass
class BookingResult:
    appointment: Appointment
    created: bool
    context: BookingContext
    alternatives: list[Slot] = field(default_factory=list)


async def book(
    session: AsyncSession, req: BookingRequest, now: datetime | None = None
) -> BookingResult:
    """Book `req`; raises InvalidInput (422) or SlotTaken (409 with alternatives). Every call
    is counted in `booking_attempts_total` (a new booking once its transaction commits)."""
    try:
        result = await _book(session, req, now or utcnow())
    except Exception as error:
        booking_metrics.count_refused(req.source, error)
        raise
    outcome = "booked" if result.created else "duplicate"
    booking_metrics.count_after_commit(session, req.source, outcome)
    return result


async def _context(
    session: AsyncSession, req: BookingRequest, now: datetime, candidates: list[str]
) -> BookingContext:
    """The booking's context, its start checked against the schedule (422 when not bookable)."""
    if req.staff_id is None:
        offer = await load_offer(
            session,
            service_id=req.service_id,
            branch_id=req.branch_id,
            phone=req.customer_phone,
            references=candidates,
        )
        ctx, free = await choose_staff(session, offer, req.start, now)
        if not free:  # a free slot at the start already passed every schedule check
            check_schedule(ctx, req.start, now)
        return ctx
    ctx = await load_context(
        session,
        service_id=req.service_id,
        staff_id=req.staff_id,
        phone=req.customer_phone,
        references=candidates,
    )
    _check_references(ctx, req)
    check_schedule(ctx, req.start, now)
    return ctx


async def _book(session: AsyncSession, req: BookingRequest, now: datetime) -> BookingResult:
    any_staff = req.staff_id is None
    candidates = [new_reference() for _ in range(REFERENCE_CANDIDATES)]
    ctx = await _context(session, req, now, candidates)
    end, blocked_from, blocked_until = blocked_range(ctx, req.start)
    # Asked before the lock (Cal.com may take up to 1.5 s); acted on after the fence, so that
    # a repeat of our own booking (which Cal.com no longer lists) still finds itself.
    refused_by_calcom = not await calcom_allows(session, ctx, req.start)

    await lock_staff(session, [ctx.staff.id])
    clashes = await conflicts(session, ctx.staff.id, blocked_from, blocked_until)
    if clashes or refused_by_calcom:
        duplicate = next(
            (
                c
                for c in clashes
                if c.kind == "appointment"
                and c.customer_id == ctx.customer_id
                and c.service_id == ctx.service.id
                and c.starts_at == req.start
            ),
            None,
        )
        if duplicate is not None and ctx.customer_id is not None:
            existing = await session.get(Appointment, duplicate.id)
            assert existing is not None
            return BookingResult(existing, created=False, context=ctx)
        alternatives = await alternatives_for(session, ctx, req.start, now, any_staff)
        raise slot_taken(alternatives, ctx.timezone)

    customer_id = await upsert_customer(
        session,
        company_id=ctx.company.id,
        phone=req.customer_phone,
        name=req.customer_name,
        email=req.customer_email,
        known_id=ctx.customer_id,
        known_name=ctx.customer_name,
        update_existing=req.update_customer,
    )
    appointment = Appointment(
        company_id=ctx.company.id,
        branch_id=ctx.branch.id,
        service_id=ctx.service.id,
        staff_id=ctx.staff.id,
        customer_id=customer_id,
        starts_at=req.start,
        ends_at=end,
        blocked_from=blocked_from,
        blocked_until=blocked_until,
        status="confirmed",
        sync_status="pending" if ctx.company.calcom_api_key else "local_only",
        source=req.source,
        call_id=req.call_id,
        price=ctx.service.price,
        currency=ctx.service.currency,
        notes=req.notes,
        reference=ctx.free_reference(candidates),
    )
    await insert_new(session, appointment)  # the built-once INSERT, no unit-of-work flush
    stage_appointment_events(session, appointment, "booking_confirmed")
    return BookingResult(appointment, created=True, context=ctx)


def _check_references(ctx: BookingContext, req: BookingRequest) -> None:
    if not ctx.service.active:
        raise InvalidInput("Unknown service.", field="service_id")
    if not ctx.staff.active:
        raise InvalidInput("This staff member is not available for booking.", field="staff_id")
    if not ctx.qualified:
        raise InvalidInput("This staff member does not offer this service.", field="staff_id")
    if req.branch_id is not None and req.branch_id != ctx.branch.id:
        raise InvalidInput("The staff member works at another branch.", field="branch_id")
    if ctx.service.branch_id is not None and ctx.service.branch_id != ctx.branch.id:
        raise InvalidInput("This service is not offered at that branch.", field="service_id")
