"""Branch-local wall-clock time and UTC instants (pure): zones by name, DST gaps and folds."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_ONE_DAY = timedelta(days=1)
_MIDNIGHT = time(0)
_MICROSECOND = timedelta(microseconds=1)


def as_utc(name: str, value: datetime) -> datetime:
    # One shared tzinfo object keeps every later comparison on CPython's fast path.
    if value.tzinfo is UTC:
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return value.astimezone(UTC)


def zone_of(tz: str | tzinfo) -> tzinfo:
    if not isinstance(tz, str):
        return tz
    try:
        return ZoneInfo(tz)  # ZoneInfo caches each name: one object per zone
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {tz!r}") from exc


def wall(instant: datetime, zone: tzinfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def local_to_utc(local: datetime, tz: str | tzinfo) -> datetime | None:
    """UTC instant of a naive wall-clock time: None in a gap, the first occurrence if repeated."""
    if local.tzinfo is not None:
        raise ValueError("local must be a naive wall-clock datetime")
    zone = zone_of(tz)
    instant = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    return instant if wall(instant, zone) == local else None


def bound_to_utc(local: datetime, zone: tzinfo) -> datetime:
    """Like local_to_utc, but a time inside a gap maps to the first instant after the gap."""
    instant = local_to_utc(local, zone)
    if instant is not None:
        return instant
    # Inside a gap fold=0 and fold=1 land on either side of the transition; bisect between them.
    lo, hi = sorted(local.replace(tzinfo=zone, fold=f).astimezone(UTC) for f in (0, 1))
    while hi - lo > _MICROSECOND:
        mid = lo + (hi - lo) // 2
        if wall(mid, zone) > local:
            hi = mid
        else:
            lo = mid
    return hi


def local_day_bounds(day: date, tz: str | tzinfo) -> tuple[datetime, datetime]:
    """UTC ``[start, end)`` of a local calendar day (23 or 25 hours long on DST days)."""
    zone = zone_of(tz)
    start = datetime.combine(day, _MIDNIGHT)
    return bound_to_utc(start, zone), bound_to_utc(start + _ONE_DAY, zone)


# The one local-time formatter: an instant shown to a person or a vendor is shown in the
# branch's zone, with its offset, through these two functions only.


def to_local(instant: datetime, tz: str | tzinfo) -> datetime:
    """The aware instant as the branch's wall clock (same instant, the branch's offset)."""
    if instant.tzinfo is None:
        raise ValueError("instant must be timezone-aware")
    return instant.astimezone(zone_of(tz))


def local_iso(instant: datetime, tz: str | tzinfo) -> str:
    """ISO 8601 with the branch's offset, e.g. 2026-03-03T14:30:00+01:00."""
    return to_local(instant, tz).isoformat()
