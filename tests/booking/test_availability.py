"""The availability engine, pure: exact slot lists, DST days, staff choice, properties."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.booking.scheduling.availability import (
    AvailabilityQuery,
    ExistingAppointment,
    ServiceSpec,
    Slot,
    StaffCalendar,
    TimeOffPeriod,
    WorkingInterval,
    find_slots,
    local_day_bounds,
    local_to_utc,
    nearest_alternatives,
    ticks_naive,
)

BERLIN = ZoneInfo("Europe/Berlin")
WED = date(2026, 6, 3)  # a plain Wednesday, +02:00 all day
SPRING = date(2026, 3, 29)  # Berlin 02:00 -> 03:00
FALL = date(2026, 10, 25)  # Berlin 03:00 -> 02:00
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def at(day: date, hh: int, mm: int = 0) -> datetime:
    """Aware Berlin wall-clock instant (first occurrence when repeated)."""
    return datetime.combine(day, time(hh, mm), tzinfo=BERLIN)


def daily(*spans: tuple[str, str], weekdays: range = range(7)) -> list[WorkingInterval]:
    return [
        WorkingInterval(wd, time.fromisoformat(start), time.fromisoformat(end))
        for wd in weekdays
        for start, end in spans
    ]


def appt(start: datetime, end: datetime, before: int = 0, after: int = 0) -> ExistingAppointment:
    return ExistingAppointment(
        start, end, start - timedelta(minutes=before), end + timedelta(minutes=after)
    )


def staff(
    sid: str,
    hours: list[WorkingInterval],
    appointments: tuple[ExistingAppointment, ...] = (),
    time_off: tuple[TimeOffPeriod, ...] = (),
) -> StaffCalendar:
    return StaffCalendar(sid, sid.upper(), hours, time_off, appointments)


def query(
    members: list[StaffCalendar],
    day: date = WED,
    service: ServiceSpec | None = None,
    *,
    now: datetime = NOW,
    days: int = 1,
    staff_id: str | None = None,
    min_notice: timedelta = timedelta(hours=2),
    booking_window_days: int = 60,
) -> AvailabilityQuery:
    return AvailabilityQuery(
        "Europe/Berlin",
        service or ServiceSpec(60),
        members,
        now=now,
        first_date=day,
        days=days,
        staff_id=staff_id,
        min_notice=min_notice,
        booking_window_days=booking_window_days,
    )


def hhmm(slots: list[Slot]) -> list[str]:
    return [s.start.astimezone(BERLIN).strftime("%H:%M") for s in slots]


def grid(first: str, last: str, step: int = 15) -> list[str]:
    t = datetime.combine(WED, time.fromisoformat(first))
    out = []
    while t <= datetime.combine(WED, time.fromisoformat(last)):
        out.append(t.strftime("%H:%M"))
        t += timedelta(minutes=step)
    return out


WORKDAY = daily(("09:00", "12:30"), ("13:00", "18:00"))
NO_BREAK = daily(("09:00", "18:00"))


# --- plain days -------------------------------------------------------------------------


def test_plain_day_exact_slots() -> None:
    slots = find_slots(query([staff("a", WORKDAY)]))
    assert hhmm(slots) == [
        *["09:00", "09:15", "09:30", "09:45", "10:00", "10:15", "10:30", "10:45", "11:00"],
        *["11:15", "11:30"],
        *["13:00", "13:15", "13:30", "13:45", "14:00", "14:15", "14:30", "14:45", "15:00"],
        *["15:15", "15:30", "15:45", "16:00", "16:15", "16:30", "16:45", "17:00"],
    ]
    assert len(slots) == 28
    assert slots[0] == Slot(
        datetime(2026, 6, 3, 7, tzinfo=UTC), datetime(2026, 6, 3, 8, tzinfo=UTC), "a"
    )
    assert slots[-1].end == datetime(2026, 6, 3, 16, tzinfo=UTC)  # 18:00 local
    assert all(s.start.tzinfo is UTC and s.end - s.start == timedelta(hours=1) for s in slots)


def test_break_is_respected() -> None:
    slots = find_slots(query([staff("a", WORKDAY)], service=ServiceSpec(30)))
    assert hhmm(slots)[10:14] == ["11:30", "11:45", "12:00", "13:00"]
    break_lo, break_hi = at(WED, 12, 30), at(WED, 13)
    assert not [s for s in slots if s.start < break_hi and break_lo < s.end]


def test_buffers_around_existing_appointment_touching_is_fine() -> None:
    # Existing 11:00-12:00 blocks 10:45-12:20; the new service needs 10 min before, 15 after.
    existing = appt(at(WED, 11), at(WED, 12), before=15, after=20)
    slots = find_slots(query([staff("a", NO_BREAK, (existing,))], service=ServiceSpec(60, 10, 15)))
    starts = hhmm(slots)
    assert starts[:6] == ["09:00", "09:15", "09:30", "12:30", "12:45", "13:00"]
    # 09:30 blocks until 10:45 and 12:30 from 12:20: both exactly touch the existing block.
    assert starts[-1] == "17:00"  # the after-buffer may reach past 18:00
    assert len(slots) == 3 + 19


def test_time_off_in_the_middle_of_the_day() -> None:
    off = TimeOffPeriod(at(WED, 12), at(WED, 14))
    slots = find_slots(query([staff("a", NO_BREAK, time_off=(off,))]))
    assert hhmm(slots) == grid("09:00", "11:00") + grid("14:00", "17:00")
    assert len(slots) == 22


def test_minimum_notice() -> None:
    now = at(WED, 10, 7).astimezone(UTC)
    slots = find_slots(query([staff("a", NO_BREAK)], now=now))
    assert hhmm(slots) == grid("12:15", "17:00")
    exact = find_slots(query([staff("a", NO_BREAK)], now=at(WED, 10).astimezone(UTC)))
    assert hhmm(exact)[0] == "12:00"  # start == now + notice is allowed
    none = find_slots(
        query(
            [staff("a", NO_BREAK)], now=at(WED, 10).astimezone(UTC), min_notice=timedelta(hours=9)
        )
    )
    assert none == []


def test_booking_window_end_day_60_inclusive_day_61_none() -> None:
    now = at(WED, 12).astimezone(UTC)
    day60 = WED + timedelta(days=60)  # 2026-08-02, same offset: no DST change in between
    slots = find_slots(query([staff("a", NO_BREAK)], day=day60, days=2, now=now))
    assert {s.start.astimezone(BERLIN).date() for s in slots} == {day60}
    assert hhmm(slots) == grid("09:00", "12:00")  # 12:00 is exactly now + 60 days
    shorter = find_slots(query([staff("a", NO_BREAK)], day=day60, now=now, booking_window_days=59))
    assert shorter == []


def test_searches_several_days_and_skips_days_off() -> None:
    weekdays_only = daily(("09:00", "10:00"), weekdays=range(5))
    slots = find_slots(query([staff("a", weekdays_only)], day=WED, days=7))
    days = sorted({s.start.astimezone(BERLIN).date() for s in slots})
    assert days == [WED, date(2026, 6, 4), date(2026, 6, 5), date(2026, 6, 8), date(2026, 6, 9)]
    assert len(slots) == 5
    assert find_slots(query([staff("a", weekdays_only)], days=0)) == []


def test_interval_ending_at_midnight() -> None:
    late = daily(("22:00", "00:00"))
    slots = find_slots(query([staff("a", late)]))
    assert hhmm(slots) == grid("22:00", "23:00")
    assert slots[-1].end == at(WED + timedelta(days=1), 0)


# --- DST --------------------------------------------------------------------------------


def test_spring_forward_gap_is_never_offered() -> None:
    night = daily(("00:00", "06:00"))
    slots = find_slots(query([staff("a", night)], day=SPRING, now=datetime(2026, 3, 1, tzinfo=UTC)))
    local = [s.start.astimezone(BERLIN).isoformat(timespec="minutes") for s in slots]
    assert local[6:10] == [
        "2026-03-29T01:30+01:00",
        "2026-03-29T01:45+01:00",
        "2026-03-29T03:00+02:00",
        "2026-03-29T03:15+02:00",
    ]
    assert slots[7].start == datetime(2026, 3, 29, 0, 45, tzinfo=UTC)
    assert slots[8].start == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert not any(s.start.astimezone(BERLIN).hour == 2 for s in slots)
    # 60 elapsed minutes from 01:30+01:00 end at 03:30+02:00.
    assert slots[6].end.astimezone(BERLIN).isoformat(timespec="minutes") == "2026-03-29T03:30+02:00"
    assert slots[6].end - slots[6].start == timedelta(minutes=60)
    assert local[-1] == "2026-03-29T05:00+02:00"  # ends at 06:00+02:00
    assert len(slots) == 8 + 9


def test_spring_forward_bounds_inside_the_gap() -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    late_start = find_slots(query([staff("a", daily(("02:30", "04:00")))], day=SPRING, now=now))
    assert late_start[0].start == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00+02:00
    assert hhmm(late_start) == ["03:00"]
    # The end bound 02:30 becomes 03:00+02:00, so 01:00+01:00 (+60 elapsed) still fits.
    early_end = find_slots(query([staff("a", daily(("00:00", "02:30")))], day=SPRING, now=now))
    assert hhmm(early_end)[-1] == "01:00"
    assert early_end[-1].end == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


def test_fall_back_repeated_hour_offered_once_at_first_occurrence() -> None:
    night = daily(("00:00", "06:00"))
    slots = find_slots(query([staff("a", night)], day=FALL, now=datetime(2026, 10, 1, tzinfo=UTC)))
    repeated = [s for s in slots if s.start.astimezone(BERLIN).hour == 2]
    assert [s.start.astimezone(BERLIN).isoformat(timespec="minutes") for s in repeated] == [
        "2026-10-25T02:00+02:00",
        "2026-10-25T02:15+02:00",
        "2026-10-25T02:30+02:00",
        "2026-10-25T02:45+02:00",
    ]
    at_0230 = repeated[2]
    assert at_0230.start == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert at_0230.end == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert at_0230.end.astimezone(BERLIN).isoformat(timespec="minutes") == "2026-10-25T02:30+01:00"
    assert len({s.start for s in slots}) == len(slots) == 8 + 4 + 9


def test_local_day_bounds_and_local_to_utc() -> None:
    assert local_day_bounds(WED, BERLIN) == (
        datetime(2026, 6, 2, 22, tzinfo=UTC),
        datetime(2026, 6, 3, 22, tzinfo=UTC),
    )
    lo, hi = local_day_bounds(SPRING, "Europe/Berlin")
    assert (lo, hi - lo) == (datetime(2026, 3, 28, 23, tzinfo=UTC), timedelta(hours=23))
    lo, hi = local_day_bounds(FALL, "Europe/Berlin")
    assert (lo, hi - lo) == (datetime(2026, 10, 24, 22, tzinfo=UTC), timedelta(hours=25))
    # Santiago springs forward at midnight: the day starts at 01:00-03:00.
    lo, hi = local_day_bounds(date(2026, 9, 6), "America/Santiago")
    assert (lo, hi - lo) == (datetime(2026, 9, 6, 4, tzinfo=UTC), timedelta(hours=23))
    assert local_to_utc(datetime(2026, 3, 29, 2, 30), BERLIN) is None
    assert local_to_utc(datetime(2026, 10, 25, 2, 30), BERLIN) == datetime(
        2026, 10, 25, 0, 30, tzinfo=UTC
    )


# --- staff choice -----------------------------------------------------------------------


def _three_staff() -> list[StaffCalendar]:
    next_day = WED + timedelta(days=1)
    a = staff("a", NO_BREAK, (appt(at(WED, 9), at(WED, 10, 30)),))  # 90 min today
    b = staff(
        "b",
        NO_BREAK,
        (
            appt(at(WED, 12), at(WED, 12, 30)),
            appt(at(WED, 14), at(WED, 14, 30)),
            appt(at(next_day, 9), at(next_day, 17)),  # another day: does not count
        ),
    )
    c = staff(
        "c", NO_BREAK, (appt(at(WED, 12), at(WED, 12, 30)), appt(at(WED, 16), at(WED, 16, 30)))
    )
    return [a, b, c]  # today: a 90, b 60, c 60 minutes


def test_any_staff_fewest_booked_minutes_then_order() -> None:
    service = ServiceSpec(30, slot_step_minutes=30)
    slots = find_slots(query(_three_staff(), service=service))
    assert len(slots) == 18 and len({s.start for s in slots}) == 18
    chosen = {t: s.staff_id for t, s in zip(hhmm(slots), slots, strict=True)}
    assert chosen["12:00"] == "a"  # b and c busy
    assert chosen["14:00"] == "c"  # b busy
    assert chosen["16:00"] == "b"  # c busy
    assert {v for k, v in chosen.items() if k not in ("12:00", "14:00", "16:00")} == {"b"}
    reordered = find_slots(query(list(reversed(_three_staff())), service=service))
    assert {s.staff_id for s in reordered if hhmm([s])[0] not in ("12:00", "14:00", "16:00")} == {
        "c"
    }


def test_staff_filter() -> None:
    service = ServiceSpec(30, slot_step_minutes=30)
    only_c = find_slots(query(_three_staff(), service=service, staff_id="c"))
    assert {s.staff_id for s in only_c} == {"c"}
    assert "12:00" not in hhmm(only_c) and "16:00" not in hhmm(only_c)
    assert len(only_c) == 16
    assert find_slots(query(_three_staff(), service=service, staff_id="nobody")) == []


def test_two_thousand_appointments_seven_days_five_staff() -> None:
    hours = daily(("08:00", "20:00"))
    members = []
    for i in range(5):
        booked = [
            appt(
                at(WED + timedelta(days=d), 8) + timedelta(minutes=10 * k),
                at(WED + timedelta(days=d), 8) + timedelta(minutes=10 * k + 10),
            )
            for d in range(7)
            for k in range(57)  # busy 08:00-17:30
        ]
        if i == 0:  # 50 extra minutes on the first day, before opening
            booked += [appt(at(WED, 6, 10 * k), at(WED, 6, 10 * k + 10)) for k in range(5)]
        members.append(staff(f"s{i}", hours, tuple(booked)))
    assert sum(len(m.appointments) for m in members) == 2000
    slots = find_slots(query(members, service=ServiceSpec(30), days=7))
    assert len(slots) == 7 * 9  # 17:30 .. 19:30 each day
    assert [s.staff_id for s in slots[:9]] == ["s1"] * 9
    assert {s.staff_id for s in slots[9:]} == {"s0"}


# --- nearest alternatives ---------------------------------------------------------------


def _slot(day: date, hh: int, staff_id: str = "a") -> Slot:
    start = at(day, hh).astimezone(UTC)
    return Slot(start, start + timedelta(minutes=30), staff_id)


def test_nearest_alternatives_same_day_by_distance_then_following_days() -> None:
    prev, nxt = WED - timedelta(days=1), WED + timedelta(days=1)
    slots = [
        _slot(prev, 16),
        *(_slot(WED, h) for h in (9, 10, 11, 13, 15)),
        _slot(nxt, 9),
        _slot(nxt, 8),
    ]
    requested = at(WED, 12).astimezone(UTC)
    near = nearest_alternatives(slots, requested, BERLIN)
    assert near == [_slot(WED, 11), _slot(WED, 13), _slot(WED, 10)]
    everything = nearest_alternatives(slots, requested, "Europe/Berlin", limit=10)
    assert everything == [
        _slot(WED, 11),
        _slot(WED, 13),
        _slot(WED, 10),
        _slot(WED, 9),  # 3 h, ties with 15:00: earlier first
        _slot(WED, 15),
        _slot(nxt, 8),
        _slot(nxt, 9),
    ]
    late = nearest_alternatives(slots, at(WED, 20).astimezone(UTC), BERLIN, limit=2)
    assert late == [_slot(WED, 15), _slot(WED, 13)]
    from_previous_evening = nearest_alternatives(slots, at(prev, 20).astimezone(UTC), BERLIN)
    assert from_previous_evening == [_slot(prev, 16), _slot(WED, 9), _slot(WED, 10)]


def test_nearest_alternatives_exclude_taken_instant() -> None:
    slots = [_slot(WED, 11, "a"), _slot(WED, 11, "b"), _slot(WED, 12, "a")]
    requested = at(WED, 11).astimezone(UTC)
    assert nearest_alternatives(slots, requested, BERLIN, exclude="a") == [
        _slot(WED, 11, "b"),
        _slot(WED, 12, "a"),
    ]
    assert nearest_alternatives(slots, requested, BERLIN)[0] == _slot(WED, 11, "a")
    only_next_days = nearest_alternatives(
        [_slot(WED, 9)], at(WED - timedelta(days=1), 9).astimezone(UTC), BERLIN
    )
    assert only_next_days == [_slot(WED, 9)]


# --- validation -------------------------------------------------------------------------


def test_inputs_are_validated() -> None:
    with pytest.raises(ValueError, match="aware"):
        query([staff("a", NO_BREAK)], now=datetime(2026, 6, 1))
    with pytest.raises(ValueError, match="time zone"):
        AvailabilityQuery("Mars/Olympus", ServiceSpec(30), [], NOW, WED)
    with pytest.raises(ValueError):
        ServiceSpec(0)
    with pytest.raises(ValueError):
        WorkingInterval(7, time(9), time(10))
    with pytest.raises(ValueError):
        WorkingInterval(0, time(10), time(9))
    with pytest.raises(ValueError, match="aware"):
        TimeOffPeriod(datetime(2026, 6, 1), datetime(2026, 6, 2, tzinfo=UTC))


# --- properties -------------------------------------------------------------------------

ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago"]
FIVE = timedelta(minutes=5)


def _transition_days(zone_name: str) -> list[date]:
    """Local dates of the 2026 offset changes (Lord Howe shifts by 30 min, Santiago at 24:00)."""
    zone = ZoneInfo(zone_name)
    t = datetime(2026, 1, 1, tzinfo=UTC)
    offset, days = t.astimezone(zone).utcoffset(), []
    while t.year == 2026:
        t += timedelta(minutes=30)
        if t.astimezone(zone).utcoffset() != offset:
            offset = t.astimezone(zone).utcoffset()
            days.append(t.astimezone(zone).date())
    return days


SEARCH_DAYS = {z: [*_transition_days(z), date(2026, 6, 3)] for z in ZONES}


def _fives(lo: int, hi: int) -> st.SearchStrategy[timedelta]:
    return st.integers(lo, hi).map(lambda n: n * FIVE)


@st.composite
def scenarios(draw: st.DrawFn) -> AvailabilityQuery:
    zone_name = draw(st.sampled_from(ZONES))
    first = draw(st.sampled_from(SEARCH_DAYS[zone_name])) - timedelta(days=draw(st.integers(0, 1)))
    days = draw(st.integers(1, 3))
    origin = local_day_bounds(first, zone_name)[0]
    members = []
    for i in range(draw(st.integers(1, 3))):
        hours = []
        for weekday in draw(st.sets(st.integers(0, 6), min_size=5)):
            for start, count in draw(
                st.lists(
                    st.tuples(st.integers(0, 287), st.integers(6, 144)), min_size=1, max_size=3
                )
            ):
                end = min(start + count, 288)
                hours.append(
                    WorkingInterval(
                        weekday,
                        time(start // 12, start % 12 * 5),
                        time(end // 12 % 24, end % 12 * 5),
                    )
                )
        appointments = []
        for offset, length, before, after in draw(
            st.lists(
                st.tuples(_fives(-36, days * 288 + 36), _fives(1, 48), _fives(0, 6), _fives(0, 6)),
                max_size=10,
            )
        ):
            begins = origin + offset
            appointments.append(
                ExistingAppointment(
                    begins, begins + length, begins - before, begins + length + after
                )
            )
        time_off = [
            TimeOffPeriod(origin + offset, origin + offset + length)
            for offset, length in draw(
                st.lists(st.tuples(_fives(-36, days * 288), _fives(1, 72)), max_size=2)
            )
        ]
        members.append(StaffCalendar(f"s{i}", f"S{i}", hours, time_off, appointments))
    service = ServiceSpec(
        draw(st.integers(1, 24)) * 5,
        draw(st.integers(0, 6)) * 5,
        draw(st.integers(0, 6)) * 5,
        draw(st.sampled_from([5, 10, 15, 20, 30, 45, 60])),
    )
    return AvailabilityQuery(
        zone_name,
        service,
        members,
        now=origin + draw(_fives(-576, 144)),
        first_date=first,
        days=days,
        staff_id=draw(st.sampled_from([None, *(m.id for m in members)])),
        min_notice=draw(_fives(0, 48)),
        booking_window_days=draw(st.integers(1, 4)),
    )


def _overlap(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _blocked(slot: Slot, service: ServiceSpec) -> tuple[datetime, datetime]:
    return (
        slot.start - timedelta(minutes=service.buffer_before_minutes),
        slot.end + timedelta(minutes=service.buffer_after_minutes),
    )


def _first_instant_from(wall: datetime, zone: ZoneInfo) -> datetime:
    instant = wall.replace(tzinfo=zone).astimezone(UTC)
    # Inside a gap fold=0 lands after the transition: walk back to it minute by minute.
    while (instant - timedelta(minutes=1)).astimezone(zone).replace(tzinfo=None) > wall:
        instant -= timedelta(minutes=1)
    return instant


def reference_slots(q: AvailabilityQuery) -> list[Slot]:
    """The documented semantics, brute force: every candidate against every busy interval."""
    zone, service = ZoneInfo(q.timezone), q.service
    step = timedelta(minutes=service.slot_step_minutes)
    duration = timedelta(minutes=service.duration_minutes)
    earliest, latest = q.now + q.min_notice, q.now + timedelta(days=q.booking_window_days)
    best: dict[datetime, tuple[tuple[timedelta, int], str]] = {}
    members = [m for m in q.staff if q.staff_id in (None, m.id)]
    for day in (q.first_date + timedelta(days=n) for n in range(q.days)):
        for index, member in enumerate(members):
            load = sum(
                (
                    a.ends_at - a.starts_at
                    for a in member.appointments
                    if a.starts_at.astimezone(zone).date() == day
                ),
                timedelta(),
            )
            for iv in (iv for iv in member.working_hours if iv.weekday == day.weekday()):
                wall = datetime.combine(day, iv.start)
                wall_end = datetime.combine(day + timedelta(days=iv.end == time(0)), iv.end)
                lo, hi = _first_instant_from(wall, zone), _first_instant_from(wall_end, zone)
                while wall < wall_end:
                    start = wall.replace(tzinfo=zone).astimezone(UTC)
                    exists = start.astimezone(zone).replace(tzinfo=None) == wall
                    wall += step
                    slot = Slot(start, start + duration, member.id)
                    blocked = _blocked(slot, service)
                    if (
                        not exists
                        or not (lo <= slot.start and slot.end <= hi and earliest <= start <= latest)
                        or any(
                            _overlap(blocked, (a.blocked_from, a.blocked_until))
                            for a in member.appointments
                        )
                        or any(_overlap(blocked, (t.starts_at, t.ends_at)) for t in member.time_off)
                    ):
                        continue
                    if start not in best or (load, index) < best[start][0]:
                        best[start] = ((load, index), member.id)
    return [Slot(start, start + duration, best[start][1]) for start in sorted(best)]


def _in_working_hours(slot: Slot, member: StaffCalendar, zone: ZoneInfo, step: int) -> bool:
    """On an interval's wall-clock grid, inside its UTC bounds (a fall-back interval holds the
    repeated wall-clock times too: 01:05-02:00 in New York on 2026-11-01 lasts 1 h 55 min)."""
    local = slot.start.astimezone(zone)
    if local.fold:  # a repeated wall-clock time is only offered at its first occurrence
        return False
    day, wall = local.date(), local.replace(tzinfo=None)
    for iv in (iv for iv in member.working_hours if iv.weekday == day.weekday()):
        iv_start = datetime.combine(day, iv.start)
        iv_end = datetime.combine(day + timedelta(days=iv.end == time(0)), iv.end)
        on_grid = wall >= iv_start and (wall - iv_start) % timedelta(minutes=step) == timedelta()
        lo, hi = _first_instant_from(iv_start, zone), _first_instant_from(iv_end, zone)
        if on_grid and lo <= slot.start and slot.end <= hi:
            return True
    return False


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_property_slots_are_free_inside_hours_and_unique(q: AvailabilityQuery) -> None:
    slots = find_slots(q)
    zone, members = ZoneInfo(q.timezone), {m.id: m for m in q.staff}
    starts = [s.start for s in slots]
    assert starts == sorted(set(starts))  # sorted, one slot per start instant
    for slot in slots:
        member = members[slot.staff_id]
        assert q.staff_id in (None, member.id)
        assert slot.end - slot.start == timedelta(minutes=q.service.duration_minutes)
        assert q.now + q.min_notice <= slot.start <= q.now + timedelta(days=q.booking_window_days)
        blocked = _blocked(slot, q.service)
        assert not any(
            _overlap(blocked, (a.blocked_from, a.blocked_until)) for a in member.appointments
        )
        assert not any(_overlap(blocked, (t.starts_at, t.ends_at)) for t in member.time_off)
        assert _in_working_hours(slot, member, zone, q.service.slot_step_minutes)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_property_matches_brute_force_reference(q: AvailabilityQuery) -> None:
    assert find_slots(q) == reference_slots(q)


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_property_any_staff_is_the_union_of_single_staff_answers(q: AvailabilityQuery) -> None:
    q = dataclasses.replace(q, staff_id=None)
    per_staff = {
        m.id: {s.start for s in find_slots(dataclasses.replace(q, staff_id=m.id))} for m in q.staff
    }
    any_staff = find_slots(q)
    assert {s.start for s in any_staff} == set().union(*per_staff.values())
    assert all(s.start in per_staff[s.staff_id] for s in any_staff)


def _as_ticks(member: StaffCalendar) -> StaffCalendar:
    """The member's appointments as a loader passes its rows: naive UTC instants as ticks."""

    def ticks(instant: datetime) -> int:
        return ticks_naive(instant.astimezone(UTC).replace(tzinfo=None))

    blocked = [
        (
            min(ticks(a.blocked_from), ticks(a.starts_at)),
            max(ticks(a.blocked_until), ticks(a.ends_at)),
        )
        for a in member.appointments
    ]
    booked = [
        (ticks(a.starts_at), ticks(a.ends_at) - ticks(a.starts_at)) for a in member.appointments
    ]
    return StaffCalendar(
        member.id,
        member.name,
        member.working_hours,
        member.time_off,
        blocked=blocked,
        booked=booked,
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_property_appointments_as_ticks_answer_exactly_as_appointments(
    q: AvailabilityQuery,
) -> None:
    as_ticks = dataclasses.replace(q, staff=[_as_ticks(m) for m in q.staff])
    assert find_slots(as_ticks) == find_slots(q) == reference_slots(q)


def test_ticks_of_a_naive_utc_instant_and_mismatched_lists_refused() -> None:
    assert ticks_naive(datetime(1970, 1, 1, 0, 0, 1)) == 1_000_000
    assert ticks_naive(datetime(2026, 6, 3, 8, 0)) == 1_780_473_600_000_000
    with pytest.raises(ValueError, match="same appointments"):
        StaffCalendar("s", "S", [], blocked=[(1, 2)], booked=[])
