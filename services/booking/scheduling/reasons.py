"""Why an availability search found no slots: a pure function of the same query.

Precedence when several apply (the first that holds wins):
no_staff_for_service > in_the_past > beyond_window > closed > fully_booked.
``in_the_past`` / ``beyond_window`` first judge the whole requested range against the horizon
(``now + min_notice`` .. ``now + window``); when the range straddles it, the working hours
(minus time off) decide: none -> ``closed``; some, but none inside the horizon -> the side they
lie on; some inside -> ``fully_booked`` (appointments or Cal.com take every start).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import timedelta
from typing import Literal

from services.booking.scheduling.availability import AvailabilityQuery, StaffCalendar, find_slots
from shared.local_time import local_day_bounds

EmptyReason = Literal[
    "no_staff_for_service", "in_the_past", "beyond_window", "closed", "fully_booked"
]
PRECEDENCE: tuple[EmptyReason, ...] = (
    "no_staff_for_service",
    "in_the_past",
    "beyond_window",
    "closed",
    "fully_booked",
)


def empty_reason(query: AvailabilityQuery) -> EmptyReason:
    """The reason `find_slots(query)` (possibly narrowed further, e.g. by Cal.com) is empty."""
    staff = [s for s in query.staff if query.staff_id is None or s.id == query.staff_id]
    if not staff:
        return "no_staff_for_service"
    earliest = query.now + query.min_notice
    latest = query.now + timedelta(days=query.booking_window_days)
    range_start = local_day_bounds(query.first_date, query.zone)[0]
    last_day = query.first_date + timedelta(days=max(query.days, 1) - 1)
    range_end = local_day_bounds(last_day, query.zone)[1]
    if range_end <= earliest:
        return "in_the_past"
    if range_start > latest:
        return "beyond_window"
    # The open starts of the requested days (hours minus time off, bookings ignored), any time.
    open_query = replace(
        query,
        staff=[StaffCalendar(s.id, s.name, s.working_hours, s.time_off) for s in staff],
        staff_id=None,
        now=range_start - timedelta(days=1),
        min_notice=timedelta(0),
        booking_window_days=query.days + 3,
    )
    starts = [slot.start for slot in find_slots(open_query)]
    if not starts:
        return "closed"
    if any(earliest <= start <= latest for start in starts):
        return "fully_booked"
    return "in_the_past" if all(start < earliest for start in starts) else "beyond_window"


def combined(reasons: Iterable[EmptyReason]) -> EmptyReason:
    """Across branches: the reason closest to having slots (the last in PRECEDENCE)."""
    return max(reasons, key=PRECEDENCE.index, default="no_staff_for_service")
