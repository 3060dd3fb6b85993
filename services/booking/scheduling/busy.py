"""The availability engine's unit and its busy runs (pure): every instant as an integer of
microseconds since the epoch ("ticks"), so that the engine's arithmetic allocates nothing, and
a staff member's blocked time merged into sorted runs walked by bisection."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.booking.scheduling.availability import StaffCalendar

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_TICK = timedelta(microseconds=1)


def ticks(instant: datetime) -> int:
    """An aware instant as microseconds since the epoch."""
    return (instant - _EPOCH) // _TICK


def ticks_naive(instant: datetime) -> int:
    """A naive UTC instant (as the database's DATETIME columns hold it) as microseconds since
    the epoch."""
    return (instant - _EPOCH_NAIVE) // _TICK


def instant_of(at: int) -> datetime:
    """Ticks as an aware UTC instant."""
    return _EPOCH + timedelta(microseconds=at)


def span(delta: timedelta) -> int:
    return delta // _TICK


class Busy:
    """One staff member's blocked time merged into disjoint sorted runs, plus booked time
    (all in ticks)."""

    __slots__ = ("_booked_prefix", "_booked_starts", "_ends", "_starts")

    def __init__(self, staff: StaffCalendar) -> None:
        spans = [(ticks(t.starts_at), ticks(t.ends_at)) for t in staff.time_off]
        booked = list(staff.booked)
        for a in staff.appointments:
            start, end = ticks(a.starts_at), ticks(a.ends_at)
            spans.append((min(ticks(a.blocked_from), start), max(ticks(a.blocked_until), end)))
            booked.append((start, end - start))
        spans += staff.blocked
        spans.sort()
        self._starts: list[int] = []
        self._ends: list[int] = []
        for lo, hi in spans:
            if lo >= hi:
                continue
            if self._ends and lo <= self._ends[-1]:
                if hi > self._ends[-1]:
                    self._ends[-1] = hi
            else:
                self._starts.append(lo)
                self._ends.append(hi)
        booked.sort()
        self._booked_starts = [s for s, _ in booked]
        self._booked_prefix = [0]
        for _, length in booked:
            self._booked_prefix.append(self._booked_prefix[-1] + length)

    def overlaps(self, lo: int, hi: int) -> bool:
        # Runs are disjoint and sorted, so the last run starting before `hi` ends latest.
        i = bisect_left(self._starts, hi) - 1
        return i >= 0 and self._ends[i] > lo

    def free_on_grid(
        self, origin: int, first: int, last: int, step: int, before: int, reach: int
    ) -> Iterator[int]:
        """The starts `origin + k * step` in `[first, last]` (`first` on that grid) whose
        blocked range `[start - before, start + reach)` overlaps no run. A run `[lo, hi)`
        blocks exactly the starts in `(lo - reach, hi + before)`, so the walk jumps over
        each run's blocked stretch instead of testing every start against the runs."""
        starts, ends = self._starts, self._ends
        i, n = bisect_right(ends, first - before), len(ends)
        start = first
        while start <= last:
            # Runs ending (with `before`) at or before `start` block nothing from here on.
            while i < n and ends[i] + before <= start:
                i += 1
            if i < n and starts[i] - reach < start:  # inside run i's blocked stretch
                start = origin - ((origin - ends[i] - before) // step) * step
                continue
            free_until = min(last, starts[i] - reach) if i < n else last
            while start <= free_until:
                yield start
                start += step

    def booked(self, lo: int, hi: int) -> int:
        """Total length of the appointments starting in ``[lo, hi)``."""
        i = bisect_left(self._booked_starts, lo)
        j = bisect_left(self._booked_starts, hi)
        return self._booked_prefix[j] - self._booked_prefix[i]
