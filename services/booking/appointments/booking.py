"""Booking an appointment: validate against the schedule, fence overlaps, write, stage events.

One call is one transaction (the caller's). Statements on the happy path with a given staff
member: context (1), staff lock (1, MariaDB only), overlap check (1), customer write (0-1),
appointment insert (1), outbox insert (1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.appointments import metrics as booking_metrics
from services.booking.appointments.context import BookingContext, load_context
from services.booking.calcom.availability import calcom_starts, restrict
from services.booking.scheduling.availability import (
    AvailabilityQuery,
    ServiceSpec,
    Slot,
    StaffCalendar,
    find_slots,
    nearest_alternatives,
)
from services.booking.scheduling.calendar_loader import load_calendars, qualified_staff
from services.booking.scheduling.rules import BookingRules, rules_for
from shared.appointments.customers import upsert_customer
from shared.appointments.events import stage_appointment_events
from shared.appointments.fence import blocked_range as fence_range
from shared.appointments.fence import conflicts, lock_staff
from shared.db.tenancy import current_company
from shared.db.types import utcnow
from shared.errors import InvalidInput, SlotTaken
from shared.models import Appointment, Branch, Service
from shared.security.references import new_reference

ALTERNATIVE_DAYS = 7
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


def blocked_range(ctx: BookingContext, start: datetime) -> tuple[datetime, datetime, datetime]:
    """(end, blocked_from, blocked_until) of an appointment of the context's service at start."""
    end = start + timedelta(minutes=ctx.service.duration_minutes)
    return (end, *fence_range(ctx.service, start, end))


def check_schedule(ctx: BookingContext, start: datetime, now: datetime) -> None:
    """Refuse (422 on `start`) a time that is past, too soon, beyond the window, or not a
    bookable start of this staff member's working hours. Existing bookings are NOT considered
    here: the fence decides those under the lock."""
    if start < now:
        raise InvalidInput("The requested time is in the past.", field="start", reason="past")
    if start < now + ctx.min_notice:
        minutes = int(ctx.min_notice.total_seconds() // 60)
        raise InvalidInput(
            f"Appointments need at least {minutes} minutes' notice.", field="start", reason="notice"
        )
    if start > now + timedelta(days=ctx.window_days):
        raise InvalidInput(
            f"Appointments can be booked at most {ctx.window_days} days ahead.",
            field="start",
            reason="window",
            last_day=(now + timedelta(days=ctx.window_days)).isoformat(),
        )
    local_day = start.astimezone(ZoneInfo(ctx.timezone)).date()
    free_schedule = StaffCalendar(ctx.staff.id, ctx.staff.name, ctx.working_hours)
    slots = find_slots(
        AvailabilityQuery(
            timezone=ctx.timezone,
            service=ctx.spec,
            staff=[free_schedule],
            now=now,
            first_date=local_day,
            days=1,
            min_notice=ctx.min_notice,
            booking_window_days=ctx.window_days,
        )
    )
    if not any(slot.start == start for slot in slots):
        raise InvalidInput(
            "The requested time is outside this staff member's working hours "
            f"or not on the {ctx.spec.slot_step_minutes}-minute grid.",
            field="start",
            reason="hours",
        )


async def free_slots(
    session: AsyncSession,
    *,
    service: Service,
    branch: Branch,
    rules: BookingRules,
    first_date: date,
    days: int,
    now: datetime,
    staff_id: str | None = None,
    ignore: Sequence[str] = (),
    reschedule_uid: str | None = None,
) -> list[Slot]:
    """Free slots of a service in one branch (all qualified staff, or one); with Cal.com, only
    the starts Cal.com also lists, unless it cannot say in time (`calcom_availability`).
    `ignore` frees appointments locally; `reschedule_uid` frees the moved booking in Cal.com."""
    staff = await qualified_staff(session, service, [branch.id], staff_id)
    spec = service_spec(service)
    reach = timedelta(
        minutes=spec.duration_minutes + spec.buffer_before_minutes + spec.buffer_after_minutes
    )
    calendars = await load_calendars(
        session, service.company_id, staff, first_date, days, branch.timezone, ignore, margin=reach
    )
    slots = find_slots(
        AvailabilityQuery(
            timezone=branch.timezone,
            service=spec,
            staff=calendars,
            now=now,
            first_date=first_date,
            days=days,
            staff_id=staff_id,
            min_notice=rules.min_notice,
            booking_window_days=rules.window_days,
        )
    )
    if not slots:
        return slots
    allowed = await calcom_starts(
        session,
        service=service,
        time_zone=branch.timezone,
        first_date=first_date,
        days=days,
        reschedule_uid=reschedule_uid,
    )
    return restrict(slots, allowed)


def service_spec(service: Service) -> ServiceSpec:
    return ServiceSpec(
        service.duration_minutes,
        service.buffer_before_minutes,
        service.buffer_after_minutes,
        service.slot_step_minutes or 15,
    )


async def alternatives_for(
    session: AsyncSession,
    ctx: BookingContext,
    start: datetime,
    now: datetime,
    any_staff: bool,
    moving: str | None = None,
    reschedule_uid: str | None = None,
) -> list[Slot]:
    """Up to 3 free slots nearest the requested start (same day first, then later days).
    `moving`: the appointment being rescheduled (its time counts as free), `reschedule_uid`
    its Cal.com booking (likewise for Cal.com)."""
    local_day = start.astimezone(ZoneInfo(ctx.timezone)).date()
    slots = await free_slots(
        session,
        service=ctx.service,
        branch=ctx.branch,
        rules=ctx.rules,
        first_date=local_day,
        days=ALTERNATIVE_DAYS,
        now=now,
        staff_id=None if any_staff else ctx.staff.id,
        ignore=[moving] if moving else (),
        reschedule_uid=reschedule_uid,
    )
    return nearest_alternatives(slots, start, ctx.timezone, exclude=ctx.staff.id)


# Built once (the ORM's tenant hook adds the company filter at execution).
_ACTIVE_BRANCHES = select(Branch).where(Branch.active.is_(True)).order_by(Branch.name, Branch.id)
_ACTIVE_BRANCH = _ACTIVE_BRANCHES.where(Branch.id == sa.bindparam("branch_id"))


async def resolve_branches(
    session: AsyncSession, service: Service, branch_id: str | None
) -> list[Branch]:
    """The branches a service is searched in: the given one, the service's, or all active."""
    wanted = branch_id or service.branch_id
    if wanted is None:
        branches = list((await session.execute(_ACTIVE_BRANCHES)).scalars())
    else:
        found = await session.execute(_ACTIVE_BRANCH, {"branch_id": wanted})
        branches = list(found.scalars())
    if wanted is not None and not branches:
        raise InvalidInput("Unknown branch.", field="branch_id")
    if service.branch_id is not None and branch_id and branch_id != service.branch_id:
        raise InvalidInput("This service is not offered at that branch.", field="branch_id")
    return branches


async def choose_staff(session: AsyncSession, req: BookingRequest, now: datetime) -> str:
    """'Any staff': the qualified member free at the start with the fewest booked minutes."""
    service = await session.scalar(select(Service).where(Service.id == req.service_id))
    if service is None or not service.active:
        raise InvalidInput("Unknown service.", field="service_id")
    branches = await resolve_branches(session, service, req.branch_id)
    company = await current_company(session)
    assert company is not None
    for branch in branches:
        slots = await free_slots(
            session,
            service=service,
            branch=branch,
            rules=rules_for(company, branch),
            first_date=req.start.astimezone(ZoneInfo(branch.timezone)).date(),
            days=1,
            now=now,
        )
        for slot in slots:
            if slot.start == req.start:
                return slot.staff_id
    staff = await qualified_staff(session, service, [b.id for b in branches])
    if not staff:
        raise InvalidInput("No staff member offers this service.", field="service_id")
    # Nobody is free then: let the first qualified staff member's fence produce the answer.
    return staff[0].id


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


async def _book(session: AsyncSession, req: BookingRequest, now: datetime) -> BookingResult:
    any_staff = req.staff_id is None
    staff_id = req.staff_id or await choose_staff(session, req, now)
    candidates = [new_reference() for _ in range(REFERENCE_CANDIDATES)]
    ctx = await load_context(
        session,
        service_id=req.service_id,
        staff_id=staff_id,
        phone=req.customer_phone,
        references=candidates,
    )
    _check_references(ctx, req)
    check_schedule(ctx, req.start, now)
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
    session.add(appointment)
    await session.flush()
    stage_appointment_events(session, appointment, "booking_confirmed")
    return BookingResult(appointment, created=True, context=ctx)


async def calcom_allows(
    session: AsyncSession,
    ctx: BookingContext,
    start: datetime,
    reschedule_uid: str | None = None,
) -> bool:
    """False only when Cal.com's slots for that local day are known and lack `start`.
    `reschedule_uid`: the Cal.com booking being moved, which then does not block."""
    allowed = await calcom_starts(
        session,
        service=ctx.service,
        company=ctx.company,
        time_zone=ctx.timezone,
        first_date=start.astimezone(ZoneInfo(ctx.timezone)).date(),
        days=1,
        reschedule_uid=reschedule_uid,
    )
    return allowed is None or start in allowed


def slot_taken(alternatives: list[Slot], timezone: str) -> SlotTaken:
    """409 `slot_taken` listing the alternatives in the branch's local time."""
    zone = ZoneInfo(timezone)
    error = SlotTaken(
        "This time is no longer available.",
        alternatives=[
            {
                "start": a.start.astimezone(zone).isoformat(),
                "end": a.end.astimezone(zone).isoformat(),
                "staff_id": a.staff_id,
            }
            for a in alternatives
        ],
    )
    error.slots = alternatives
    return error


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
