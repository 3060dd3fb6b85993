"""Free slots around a booking: the schedule check of a requested start, the free slots of a
service (local calendar narrowed by Cal.com), the alternatives offered when a time is taken,
and the any-staff choice (computed once from one calendar read)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.appointments.context import BookingContext, Offer, service_spec
from services.booking.appointments.schemas import SlotOut
from services.booking.calcom.availability import calcom_starts, restrict
from services.booking.scheduling.availability import (
    AvailabilityQuery,
    ServiceSpec,
    Slot,
    StaffCalendar,
    find_slots,
    nearest_alternatives,
)
from services.booking.scheduling.calendar_loader import (
    calendars_between,
    load_calendars,
    local_range,
    qualified_staff,
)
from services.booking.scheduling.reasons import EmptyReason, empty_reason
from services.booking.scheduling.rules import BookingRules, rules_for
from shared.appointments.fence import blocked_range as fence_range
from shared.errors import InvalidInput, SlotTaken
from shared.local_time import to_local
from shared.models import Branch, Service

ALTERNATIVE_DAYS = 7


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
    free_schedule = StaffCalendar(ctx.staff.id, ctx.staff.name, ctx.working_hours)
    slots = _slots_of_day(ctx.spec, ctx.branch, ctx.rules, [free_schedule], start, now)
    if not any(slot.start == start for slot in slots):
        raise InvalidInput(
            "The requested time is outside this staff member's working hours "
            f"or not on the {ctx.spec.slot_step_minutes}-minute grid.",
            field="start",
            reason="hours",
        )


def _slots_of_day(
    spec: ServiceSpec,
    branch: Branch,
    rules: BookingRules,
    calendars: list[StaffCalendar],
    start: datetime,
    now: datetime,
) -> list[Slot]:
    """The free slots of `calendars` on the branch's local day of `start`."""
    return find_slots(
        AvailabilityQuery(
            timezone=branch.timezone,
            service=spec,
            staff=calendars,
            now=now,
            first_date=to_local(start, branch.timezone).date(),
            days=1,
            min_notice=rules.min_notice,
            booking_window_days=rules.window_days,
        )
    )


def _reach(spec: ServiceSpec) -> timedelta:
    """How far a slot's blocked range reaches: duration plus buffers."""
    return timedelta(
        minutes=spec.duration_minutes + spec.buffer_before_minutes + spec.buffer_after_minutes
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
    found = await explained_free_slots(
        session,
        service=service,
        branch=branch,
        rules=rules,
        first_date=first_date,
        days=days,
        now=now,
        staff_id=staff_id,
        ignore=ignore,
        reschedule_uid=reschedule_uid,
    )
    return found.slots


@dataclass(frozen=True)
class FoundSlots:
    """Free slots, and why there are none when empty (None when there are slots)."""

    slots: list[Slot]
    reason: EmptyReason | None


async def explained_free_slots(
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
) -> FoundSlots:
    """`free_slots` with the reason of an empty answer (from the calendars already read)."""
    staff = await qualified_staff(session, service, [branch.id], staff_id)
    spec = service_spec(service)
    calendars = await load_calendars(
        session,
        service.company_id,
        staff,
        first_date,
        days,
        branch.timezone,
        ignore,
        margin=_reach(spec),
    )
    query = AvailabilityQuery(
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
    slots = find_slots(query)
    if not slots:
        return FoundSlots(slots, empty_reason(query))
    allowed = await calcom_starts(
        session,
        service=service,
        time_zone=branch.timezone,
        first_date=first_date,
        days=days,
        reschedule_uid=reschedule_uid,
    )
    slots = restrict(slots, allowed)
    return FoundSlots(slots, None if slots else "fully_booked")


async def choose_staff(
    session: AsyncSession, offer: Offer, start: datetime, now: datetime
) -> tuple[BookingContext, bool]:
    """'Any staff': the context with the qualified member free at `start` with the fewest
    booked minutes (branches in name order), and True; nobody free then: the first qualified
    member, and False (the schedule check and the fence produce the answer). Two statements:
    the qualified staff with their hours, and their calendars around `start`."""
    service, company = offer.service, offer.company
    staff = await qualified_staff(session, service, [b.id for b in offer.branches])
    if not staff:
        raise InvalidInput("No staff member offers this service.", field="service_id")
    spec = service_spec(service)
    ranges = [
        local_range(to_local(start, b.timezone).date(), 1, b.timezone) for b in offer.branches
    ]
    reach = _reach(spec)
    low = min(low for low, _ in ranges) - reach
    high = max(high for _, high in ranges) + reach
    calendars = await calendars_between(session, service.company_id, staff, low, high)
    for branch in offer.branches:
        members = [c for c, s in zip(calendars, staff, strict=True) if s.branch_id == branch.id]
        slots = _slots_of_day(spec, branch, rules_for(company, branch), members, start, now)
        if not slots:
            continue
        allowed = await calcom_starts(
            session,
            service=service,
            company=company,
            time_zone=branch.timezone,
            first_date=to_local(start, branch.timezone).date(),
            days=1,
        )
        chosen = next((s for s in restrict(slots, allowed) if s.start == start), None)
        if chosen is not None:
            member = next(s for s in staff if s.id == chosen.staff_id)
            return offer.for_staff(member), True
    return offer.for_staff(staff[0]), False


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
    slots = await free_slots(
        session,
        service=ctx.service,
        branch=ctx.branch,
        rules=ctx.rules,
        first_date=to_local(start, ctx.timezone).date(),
        days=ALTERNATIVE_DAYS,
        now=now,
        staff_id=None if any_staff else ctx.staff.id,
        ignore=[moving] if moving else (),
        reschedule_uid=reschedule_uid,
    )
    return nearest_alternatives(slots, start, ctx.timezone, exclude=ctx.staff.id)


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
        first_date=to_local(start, ctx.timezone).date(),
        days=1,
        reschedule_uid=reschedule_uid,
    )
    return allowed is None or start in allowed


def slot_taken(alternatives: list[Slot], timezone: str) -> SlotTaken:
    """409 `slot_taken` listing the alternatives in the branch's local time."""
    error = SlotTaken(
        "This time is no longer available.",
        alternatives=[SlotOut.of(a, timezone).model_dump() for a in alternatives],
    )
    error.slots = alternatives
    return error
