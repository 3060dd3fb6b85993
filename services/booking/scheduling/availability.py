"""Availability engine: free slots as a pure function of schedules, bookings and ``now``.

No database, no clock, no I/O. The caller loads the candidate staff with their working hours,
time off and live appointments (``local_day_bounds`` gives the UTC range of the local days to
load) and passes ``now``; ``find_slots`` answers.

Semantics
---------
* Time. Working hours are branch-local wall-clock times. Every instant is an aware datetime;
  inputs may carry any offset, outputs are UTC. Durations, buffers, notice and window are
  elapsed time (a DST day lasts 23 or 25 hours).
* Closed days. An interval does not apply on a local date in its ``closed_on`` (the branch's
  closed days: the whole local day has no slots).
* Candidate starts. For each searched local date and each working interval of its weekday the
  candidates are ``interval start + k * slot_step`` (k >= 0) in wall-clock time, converted with
  zoneinfo. A wall-clock time that does not exist (spring-forward gap) is never offered; one that
  occurs twice (fall-back) is offered once, at its first occurrence (fold=0, the pre-transition
  offset). The grid is anchored at each interval's start, not at midnight.
* Interval bounds are converted the same way; a bound inside a gap becomes the first instant
  after the gap. An end of 00:00 means midnight at the end of that day. An interval spanning
  a fall-back includes the repeated hour (New York 01:05-02:00 on 2026-11-01 lasts 1 h 55 min).
* Fit. ``end = start + duration``. ``[start, end)`` must lie inside one working interval (its
  UTC bounds). The blocked range ``[start - buffer_before, end + buffer_after)`` must not overlap
  that staff member's time off nor any appointment's ``[blocked_from, blocked_until)`` (widened
  to ``[starts_at, ends_at)`` should the row's blocked range not cover it). All intervals are
  half-open: touching is fine. Buffers may reach outside working hours.
* Horizon. ``now + min_notice <= start <= now + booking_window_days`` (both bounds inclusive).
* Staff choice. With ``staff_id`` only that staff member is considered (an id not among the
  candidates yields no slots). Without it each start instant is offered once, assigned to the
  free staff member with the fewest booked minutes on that local day (sum of ``ends_at -
  starts_at`` of their appointments starting that local day); ties go to the earlier one in the
  given staff order.
* Output is sorted by start (starts are unique).

Cost: busy intervals are merged and sorted once per staff member (O(A log A)); each working
interval then takes one bisect and a walk that jumps over each busy run's blocked stretch, so
it costs O(log A + runs in it + free starts), never a scan of the appointments. Inside, every
instant is an integer of microseconds since the epoch ("ticks"): integer arithmetic allocates
nothing, where each datetime/timedelta step built an object. A loader holding rows of naive
UTC datetimes passes them as ticks (``StaffCalendar.blocked``/``booked``, see ``ticks_naive``)
instead of building an ``ExistingAppointment`` per row.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from services.booking.scheduling.busy import Busy, instant_of, span, ticks, ticks_naive
from shared.local_time import as_utc as _utc
from shared.local_time import bound_to_utc as _bound_to_utc
from shared.local_time import local_day_bounds, local_to_utc
from shared.local_time import zone_of as _zone

__all__ = [
    "AvailabilityQuery",
    "ExistingAppointment",
    "ServiceSpec",
    "Slot",
    "StaffCalendar",
    "TimeOffPeriod",
    "WorkingInterval",
    "find_slots",
    "local_day_bounds",
    "local_to_utc",
    "nearest_alternatives",
    "ticks_naive",
]

_ONE_DAY = timedelta(days=1)
_MIDNIGHT = time(0)


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    duration_minutes: int
    buffer_before_minutes: int = 0
    buffer_after_minutes: int = 0
    slot_step_minutes: int = 15

    def __post_init__(self) -> None:
        if self.duration_minutes <= 0 or self.slot_step_minutes <= 0:
            raise ValueError("duration and slot step must be positive")
        if self.buffer_before_minutes < 0 or self.buffer_after_minutes < 0:
            raise ValueError("buffers must not be negative")


@dataclass(frozen=True, slots=True)
class WorkingInterval:
    """Branch-local wall-clock hours on a weekday (0 = Monday); end 00:00 = end of the day.
    ``closed_on``: local dates on which the interval does not apply (the branch is closed)."""

    weekday: int
    start: time
    end: time
    closed_on: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        if not 0 <= self.weekday <= 6:
            raise ValueError("weekday must be 0 (Monday) .. 6 (Sunday)")
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("working hours are naive wall-clock times")
        if self.end != _MIDNIGHT and self.end <= self.start:
            raise ValueError("working interval must end after it starts")


@dataclass(frozen=True, slots=True)
class TimeOffPeriod:
    starts_at: datetime
    ends_at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "starts_at", _utc("starts_at", self.starts_at))
        object.__setattr__(self, "ends_at", _utc("ends_at", self.ends_at))
        if self.ends_at < self.starts_at:
            raise ValueError("time off must not end before it starts")


@dataclass(frozen=True, slots=True)
class ExistingAppointment:
    """A live appointment; ``blocked_*`` include its own buffers."""

    starts_at: datetime
    ends_at: datetime
    blocked_from: datetime
    blocked_until: datetime

    def __post_init__(self) -> None:
        # Built by the thousand per request: skip the normalising loop for UTC rows.
        if not (
            self.starts_at.tzinfo is UTC
            and self.ends_at.tzinfo is UTC
            and self.blocked_from.tzinfo is UTC
            and self.blocked_until.tzinfo is UTC
        ):
            for name in ("starts_at", "ends_at", "blocked_from", "blocked_until"):
                object.__setattr__(self, name, _utc(name, getattr(self, name)))
        if self.ends_at < self.starts_at or self.blocked_until < self.blocked_from:
            raise ValueError("appointment must not end before it starts")


@dataclass(frozen=True, slots=True)
class StaffCalendar:
    """A staff member's hours, time off and live appointments. ``blocked`` and ``booked`` are
    appointments given as ticks instead (a loader's rows): ``blocked`` their ``(from, until)``
    ranges (already widened to cover ``[starts_at, ends_at)``), ``booked`` their ``(starts_at,
    length)``; both count exactly like ``appointments``."""

    id: str
    name: str
    working_hours: Sequence[WorkingInterval]
    time_off: Sequence[TimeOffPeriod] = ()
    appointments: Sequence[ExistingAppointment] = ()
    blocked: Sequence[tuple[int, int]] = ()
    booked: Sequence[tuple[int, int]] = ()

    def __post_init__(self) -> None:
        for name in ("working_hours", "time_off", "appointments"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if len(self.blocked) != len(self.booked):
            raise ValueError("blocked and booked describe the same appointments")


@dataclass(frozen=True, slots=True)
class AvailabilityQuery:
    """Everything ``find_slots`` needs; ``staff`` order is the tie-break order."""

    timezone: str
    service: ServiceSpec
    staff: Sequence[StaffCalendar]
    now: datetime
    first_date: date
    days: int = 1
    staff_id: str | None = None
    min_notice: timedelta = timedelta(hours=2)
    booking_window_days: int = 60
    zone: tzinfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "zone", _zone(self.timezone))
        object.__setattr__(self, "staff", tuple(self.staff))
        object.__setattr__(self, "now", _utc("now", self.now))
        if isinstance(self.first_date, datetime):
            raise ValueError("first_date must be a date, not a datetime")
        if self.days < 0 or self.booking_window_days < 0:
            raise ValueError("days and booking_window_days must not be negative")


@dataclass(frozen=True, slots=True, order=True)
class Slot:
    start: datetime
    end: datetime
    staff_id: str


class _Bounds:
    """Wall-clock interval bounds of one zone as ticks, each converted once per query (staff
    members mostly share their hours)."""

    __slots__ = ("_known", "zone")

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone
        self._known: dict[datetime, int] = {}

    def __call__(self, local: datetime) -> int:
        at = self._known.get(local)
        if at is None:
            at = self._known[local] = ticks(_bound_to_utc(local, self.zone))
        return at


def _free_starts(
    intervals: Sequence[WorkingInterval],
    busy: Busy,
    day: date,
    bounds: _Bounds,
    service: ServiceSpec,
    earliest: int,
    latest: int,
) -> Iterator[int]:
    step = span(timedelta(minutes=service.slot_step_minutes))
    duration = span(timedelta(minutes=service.duration_minutes))
    before = span(timedelta(minutes=service.buffer_before_minutes))
    after = span(timedelta(minutes=service.buffer_after_minutes))
    for interval in intervals:
        local = datetime.combine(day, interval.start)
        local_end = datetime.combine(
            day + _ONE_DAY if interval.end == _MIDNIGHT else day, interval.end
        )
        lo, hi = bounds(local), bounds(local_end)
        if hi - lo == span(local_end - local):
            # Elapsed length == wall-clock length: no offset change inside (tzdata has no pair
            # of opposite transitions within hours), so the wall-clock grid is an elapsed grid.
            first = lo if earliest <= lo else lo - ((lo - earliest) // step) * step
            yield from busy.free_on_grid(
                lo, first, min(latest, hi - duration), step, before, duration + after
            )
            continue
        # Existing wall-clock times map to strictly increasing instants (fold=0), so the
        # first candidate that ends or starts too late ends the interval.
        wall_step = timedelta(minutes=service.slot_step_minutes)
        while local < local_end:
            start_or_none = local_to_utc(local, bounds.zone)
            local += wall_step
            if start_or_none is None:
                continue
            start = ticks(start_or_none)
            if start < max(lo, earliest):
                continue
            end = start + duration
            if end > hi or start > latest:
                break
            if not busy.overlaps(start - before, end + after):
                yield start


def find_slots(query: AvailabilityQuery) -> list[Slot]:
    """Free slots for the query's service, local days and staff, sorted by start (UTC)."""
    zone, service = query.zone, query.service
    earliest_instant = query.now + query.min_notice
    latest_instant = query.now + timedelta(days=query.booking_window_days)
    if latest_instant < earliest_instant or query.days == 0:
        return []
    staff = [s for s in query.staff if query.staff_id is None or s.id == query.staff_id]
    if not staff:
        return []
    # Only local dates that can hold a start inside the horizon (one day of slack either side).
    first_offset = (earliest_instant.astimezone(zone).date() - _ONE_DAY - query.first_date).days
    last_offset = (latest_instant.astimezone(zone).date() + _ONE_DAY - query.first_date).days
    offsets = range(max(0, first_offset), min(query.days - 1, last_offset) + 1)
    if not offsets:
        return []

    calendars = [(s, Busy(s)) for s in staff]
    bounds = _Bounds(zone)
    by_weekday = [
        [[iv for iv in s.working_hours if iv.weekday == wd] for wd in range(7)] for s in staff
    ]
    earliest, latest = ticks(earliest_instant), ticks(latest_instant)
    duration = span(timedelta(minutes=service.duration_minutes))
    choose_by_load = len(staff) > 1
    # start -> (booked time that day, index of the staff member): the Slot is built once
    # per start at the end, not once per free staff member.
    best: dict[int, tuple[int, int]] = {}
    for offset in offsets:
        day = query.first_date + timedelta(days=offset)
        day_bounds = local_day_bounds(day, zone) if choose_by_load else None
        for index, (_member, busy) in enumerate(calendars):
            intervals = [iv for iv in by_weekday[index][day.weekday()] if day not in iv.closed_on]
            if not intervals:
                continue
            load = busy.booked(*map(ticks, day_bounds)) if day_bounds else 0
            for start in _free_starts(intervals, busy, day, bounds, service, earliest, latest):
                current = best.get(start)
                # Staff are visited in order, so keeping the incumbent on a tie favours order.
                if current is None or load < current[0]:
                    best[start] = (load, index)
    instants: dict[int, datetime] = {}

    def instant(at: int) -> datetime:
        value = instants.get(at)
        if value is None:
            value = instants[at] = instant_of(at)
        return value

    return [
        Slot(instant(start), instant(start + duration), staff[best[start][1]].id)
        for start in sorted(best)
    ]


def nearest_alternatives(
    slots: Sequence[Slot],
    requested_start_utc: datetime,
    tz: str | tzinfo,
    limit: int = 3,
    exclude: str | None = None,
) -> list[Slot]:
    """Up to ``limit`` slots: same local day by distance (ties earlier), then later days in order.

    ``exclude`` is a staff id whose slot at exactly the requested instant is never offered
    (the one that was just found taken). Slots on earlier local days are never offered.
    """
    zone = _zone(tz)
    requested = _utc("requested_start_utc", requested_start_utc)
    requested_day = requested.astimezone(zone).date()
    same_day: list[Slot] = []
    later: list[Slot] = []
    for slot in slots:
        if slot.start == requested and slot.staff_id == exclude:
            continue
        slot_day = slot.start.astimezone(zone).date()
        if slot_day == requested_day:
            same_day.append(slot)
        elif slot_day > requested_day:
            later.append(slot)
    same_day.sort(key=lambda s: (abs(s.start - requested), s.start))
    later.sort(key=lambda s: s.start)
    return (same_day + later)[: max(limit, 0)]
