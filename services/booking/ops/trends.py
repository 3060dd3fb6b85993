"""The owners' 30-day trends: per local day of the company's zone, bookings made (agent vs
the rest), cancellations, calls the agent handled vs callbacks requested, no-shows and fees.

One GROUP BY statement per figure, each over the window's rows only. Local days are not a
fixed UTC offset (a DST day lasts 23 or 25 hours; some zones are 30 or 45 minutes off UTC),
so the day of a row is a CASE over the window's day bounds (`local_day_bounds`), computed in
the database: exact on every day and in every zone, and no row leaves the database. The
company's rows only: the session's tenant filter (docs/adr/0010) applies to every statement,
subqueries included, and `trends` refuses a session that is not bound to `company_id`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.tenancy import current_tenant
from shared.errors import TenantNotSet
from shared.local_time import local_day_bounds, to_local
from shared.models import Appointment, AppointmentModification, Call, CallbackRequest

DEFAULT_CURRENCY = "EUR"
CENT = Decimal("0.01")
MAX_DAYS = 366


@dataclass(frozen=True)
class DayTrend:
    """One local day's figures."""

    day: date
    bookings_agent: int = 0
    bookings_other: int = 0
    cancellations: int = 0
    agent_calls: int = 0
    callbacks: int = 0
    no_shows: int = 0
    fees: Decimal = Decimal("0.00")  # in `Trends.currency`

    @property
    def bookings(self) -> int:
        return self.bookings_agent + self.bookings_other


@dataclass(frozen=True)
class Trends:
    """`days` oldest first, the last one is today (local). Fees are summed in `currency`, the
    company's most common fee currency (EUR when no fee was charged); fees in any other
    currency cannot be added to them and are totalled apart in `other_fees`."""

    timezone: str
    currency: str
    days: tuple[DayTrend, ...]
    other_fees: tuple[tuple[str, Decimal], ...] = ()

    @property
    def labels(self) -> list[date]:
        return [d.day for d in self.days]

    def series(self, name: str) -> list[Any]:
        """One figure per day, e.g. `series("cancellations")`."""
        return [getattr(d, name) for d in self.days]


def window_days(now: datetime, tz: str, days: int) -> list[date]:
    """The `days` local dates ending today in `tz`, oldest first."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be between 1 and {MAX_DAYS}")
    today = to_local(now, tz).date()
    return [today - timedelta(days=n) for n in range(days - 1, -1, -1)]


def day_bounds(dates: Sequence[date], tz: str) -> list[datetime]:
    """The UTC instants where each local day starts, and where the last one ends."""
    starts = [local_day_bounds(d, tz)[0] for d in dates]
    return [*starts, local_day_bounds(dates[-1], tz)[1]]


def _day_of(column: Any, bounds: Sequence[datetime], first: int = 0, last: int = -1) -> Any:
    """The index of the local day a timestamp in [bounds[0], bounds[-1]) falls on: a CASE
    that halves the days at each level (five comparisons a row for 30 days, not 30)."""
    last = len(bounds) - 2 if last < 0 else last
    if first == last:
        return sa.literal(first)
    middle = (first + last + 1) // 2
    return sa.case(
        (column < bounds[middle], _day_of(column, bounds, first, middle - 1)),
        else_=_day_of(column, bounds, middle, last),
    )


def _windowed(
    model: Any, column: Any, bounds: Sequence[datetime], *columns: Any, where: Any = ()
) -> Any:
    """A subquery of the window's `model` rows: their day index as `day`, plus `columns`.

    `select_from(model)` is what makes the tenant filter see the entity: a table reached only
    through a SQL function (the COALESCE of calls) is not filtered otherwise."""
    return (
        sa.select(_day_of(column, bounds).label("day"), *columns)
        .select_from(model)
        .where(column >= bounds[0], column < bounds[-1], *where)
        .subquery()
    )


async def _counts(session: AsyncSession, rows: Any) -> dict[int, int]:
    result = await session.execute(sa.select(rows.c.day, sa.func.count()).group_by(rows.c.day))
    return {int(day): int(count) for day, count in result}


async def _bookings(
    session: AsyncSession, bounds: Sequence[datetime]
) -> dict[int, tuple[int, int]]:
    """Appointments created per day (any source; reschedules create one as well): agent, rest."""
    rows = _windowed(
        Appointment,
        Appointment.created_at,
        bounds,
        (Appointment.source == "agent").label("by_agent"),
    )
    by_agent = sa.func.coalesce(sa.func.sum(sa.case((rows.c.by_agent, 1), else_=0)), 0)
    result = await session.execute(
        sa.select(rows.c.day, by_agent, sa.func.count()).group_by(rows.c.day)
    )
    return {int(day): (int(agent), int(total) - int(agent)) for day, agent, total in result}


async def _fees(
    session: AsyncSession, bounds: Sequence[datetime]
) -> dict[tuple[int, str], tuple[Decimal, int]]:
    """Fees per day and currency: their sum and the number of charged modifications."""
    fee = AppointmentModification.fee
    rows = _windowed(
        AppointmentModification,
        AppointmentModification.created_at,
        bounds,
        AppointmentModification.currency,
        fee,
        where=[fee != 0],
    )
    result = await session.execute(
        sa.select(rows.c.day, rows.c.currency, sa.func.sum(rows.c.fee), sa.func.count()).group_by(
            rows.c.day, rows.c.currency
        )
    )
    return {
        (int(day), str(currency)): (Decimal(total or 0).quantize(CENT), int(count))
        for day, currency, total, count in result
    }


def _main_currency(fees: dict[tuple[int, str], tuple[Decimal, int]]) -> str:
    """The currency most fees were charged in (ties: alphabetical); EUR when none was."""
    counts: Counter[str] = Counter()
    for (_day, currency), (_total, count) in fees.items():
        counts[currency] += count
    if not counts:
        return DEFAULT_CURRENCY
    return min(counts, key=lambda c: (-counts[c], c))


async def trends(
    session: AsyncSession, company_id: str, now: datetime, tz: str, days: int = 30
) -> Trends:
    """The company's figures per local day of `tz` over the `days` days ending today."""
    if current_tenant(session) != company_id:
        raise TenantNotSet("trends need a session bound to the company they are for")
    dates = window_days(now, tz, days)
    bounds = day_bounds(dates, tz)
    bookings = await _bookings(session, bounds)
    cancellations = await _counts(
        session,
        _windowed(
            Appointment,
            Appointment.cancelled_at,
            bounds,
            where=[Appointment.status == "cancelled"],
        ),
    )
    no_shows = await _counts(
        session,
        _windowed(
            Appointment, Appointment.starts_at, bounds, where=[Appointment.status == "no_show"]
        ),
    )
    # A call registered by an agent function before Retell reported its start has no
    # `started_at` yet: it counts on the day its row was made.
    calls = await _counts(
        session, _windowed(Call, sa.func.coalesce(Call.started_at, Call.created_at), bounds)
    )
    callbacks = await _counts(
        session, _windowed(CallbackRequest, CallbackRequest.created_at, bounds)
    )
    fees = await _fees(session, bounds)
    currency = _main_currency(fees)
    other: dict[str, Decimal] = {}
    for (_day, cur), (total, _count) in fees.items():
        if cur != currency:
            other[cur] = other.get(cur, Decimal("0.00")) + total
    return Trends(
        timezone=tz,
        currency=currency,
        days=tuple(
            DayTrend(
                day=day,
                bookings_agent=bookings.get(index, (0, 0))[0],
                bookings_other=bookings.get(index, (0, 0))[1],
                cancellations=cancellations.get(index, 0),
                agent_calls=calls.get(index, 0),
                callbacks=callbacks.get(index, 0),
                no_shows=no_shows.get(index, 0),
                fees=fees.get((index, currency), (Decimal("0.00"), 0))[0],
            )
            for index, day in enumerate(dates)
        ),
        other_fees=tuple(sorted(other.items())),
    )
