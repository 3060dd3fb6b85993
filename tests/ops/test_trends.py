"""The owners' 30-day trends (services/booking/ops/trends.py) on SQLite and MariaDB: rows on
known local days of Europe/Berlin, around the 2026-10-25 DST change and at the window's
edges, and another company's rows that must never count."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.booking.ops.trends import DayTrend, Trends, trends, window_days
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.errors import TenantNotSet
from shared.models import AppointmentModification, Call, CallbackRequest, Customer
from tests.support.factories import Salon, create_salon, salon_appointment

TZ = "Europe/Berlin"
NOW = datetime(2026, 11, 5, 12, 0, tzinfo=UTC)  # the window: 2026-10-07 .. 2026-11-05 local
LONG_AGO = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Seeder:
    """Rows of one salon's company, each at a given instant."""

    def __init__(self, db: Database, salon: Salon) -> None:
        self.db, self.salon = db, salon
        self.rows: list[Any] = []
        self.customer_id = str(uuid.uuid4())
        self.rows.append(
            Customer(id=self.customer_id, name="Erika", phone="+4917" + str(uuid.uuid4().int)[:8])
        )

    def appointment(self, created: str, *, start: str | None = None, **fields: Any) -> str:
        row = salon_appointment(
            self.salon,
            self.customer_id,
            utc(start) if start else utc(created) + timedelta(days=3),
            created_at=utc(created),
            **fields,
        )
        row.id = str(uuid.uuid4())
        self.rows.append(row)
        return row.id

    def call(self, *, started: str | None, created: str) -> None:
        self.rows.append(
            Call(
                retell_call_id=f"call_{uuid.uuid4().hex}",
                started_at=utc(started) if started else None,
                created_at=utc(created),
            )
        )

    def callback(self, created: str) -> None:
        self.rows.append(
            CallbackRequest(
                phone_number="+4930123456",
                reason="wants a call back",
                due_at=utc(created) + timedelta(hours=2),
                created_at=utc(created),
            )
        )

    def fee(self, created: str, fee: str, currency: str = "EUR") -> None:
        appointment_id = self.appointment("2026-09-01T08:00:00", status="cancelled")
        self.rows.append(
            AppointmentModification(
                appointment_id=appointment_id,
                customer_id=self.customer_id,
                modification_type="cancel",
                actor="api",
                fee=Decimal(fee),
                currency=currency,
                created_at=utc(created),
            )
        )

    async def save(self) -> None:
        async with self.db.transaction(self.salon.tenant.company_id) as session:
            session.add_all(self.rows[:1])
            await session.flush()
            session.add_all(self.rows[1:])


async def seed_company(db: Database) -> Salon:
    salon = await create_salon(db)
    s = Seeder(db, salon)
    # Bookings. 2026-10-25 (the DST change) lasts 25 hours: 2026-10-24T22:00Z .. 10-25T23:00Z.
    s.appointment("2026-10-24T22:30:00", source="agent")  # 10-25 00:30 CEST: Oct 25, not 24
    s.appointment("2026-10-25T22:30:00", source="api")  # 10-25 23:30 CET: still Oct 25
    s.appointment("2026-10-25T22:59:59", source="agent")  # the day's last second
    s.appointment("2026-10-25T23:00:00", source="calcom")  # 10-26 00:00 CET: Oct 26
    s.appointment("2026-10-06T21:59:59", source="agent")  # 10-06 23:59:59: before the window
    s.appointment("2026-10-06T22:00:00", source="api")  # 10-07 00:00: the window's first day
    s.appointment("2026-11-05T22:59:00", source="agent")  # 11-05 23:59: today, the last day
    s.appointment("2026-11-05T23:00:00", source="agent")  # 11-06: after the window
    # Cancellations (cancelled_at) and a rescheduled tombstone that is not one.
    s.appointment(
        "2026-09-01T08:00:00", status="cancelled", cancelled_at=utc("2026-11-01T10:00:00")
    )
    s.appointment(
        "2026-09-01T08:00:00", status="cancelled", cancelled_at=utc("2026-10-25T23:30:00")
    )
    s.appointment(
        "2026-09-01T08:00:00", status="rescheduled", cancelled_at=utc("2026-11-01T10:00:00")
    )
    # No-shows by their start; a confirmed appointment starting the same day is not one.
    s.appointment("2026-09-01T08:00:00", status="no_show", start="2026-10-20T08:00:00")
    s.appointment("2026-09-01T08:00:00", status="no_show", start="2026-10-24T22:15:00")
    s.appointment("2026-09-01T08:00:00", status="confirmed", start="2026-10-20T09:00:00")
    # Calls: 01:30Z on the DST day is 02:30 CET, the repeated hour; a call without a start
    # counts on the day its row was made.
    s.call(started="2026-10-25T01:30:00", created="2026-10-25T01:30:00")
    s.call(started="2026-11-02T10:00:00", created="2026-11-02T10:00:00")
    s.call(started=None, created="2026-11-02T09:00:00")
    s.call(started="2026-10-06T21:00:00", created="2026-10-06T21:00:00")  # before the window
    s.callback("2026-11-02T11:00:00")
    s.callback("2026-10-25T22:59:00")
    # Fees: sums are exact (0.10 + 0.20), a zero fee is no charge, CHF is totalled apart.
    s.fee("2026-11-01T10:00:00", "12.50")
    s.fee("2026-11-01T11:00:00", "7.25")
    s.fee("2026-11-01T12:00:00", "0.00")
    s.fee("2026-10-30T09:00:00", "0.10")
    s.fee("2026-10-30T09:30:00", "0.20")
    s.fee("2026-10-24T22:30:00", "10.10")  # Oct 25 local
    s.fee("2026-10-30T10:00:00", "5.00", "CHF")
    await s.save()
    return salon


async def seed_other_company(db: Database) -> None:
    """The same kinds of rows on the same days, for another company."""
    s = Seeder(db, await create_salon(db))
    for created in ("2026-10-24T22:30:00", "2026-11-01T10:00:00", "2026-11-05T10:00:00"):
        s.appointment(created, source="agent")
        s.appointment(created, source="api", status="cancelled", cancelled_at=utc(created))
        s.appointment(created, status="no_show", start=created)
        s.call(started=created, created=created)
        s.callback(created)
        s.fee(created, "99.99")
        s.fee(created, "1.00", "USD")
    await s.save()


def nonzero(result: Trends) -> dict[date, dict[str, Any]]:
    zero = DayTrend(day=date.min)
    figures = (
        "bookings_agent",
        "bookings_other",
        "cancellations",
        "agent_calls",
        "callbacks",
        "no_shows",
        "fees",
    )
    return {
        d.day: {f: getattr(d, f) for f in figures if getattr(d, f) != getattr(zero, f)}
        for d in result.days
        if d != DayTrend(day=d.day)
    }


async def test_trends_count_per_local_day(db: Database) -> None:
    salon = await seed_company(db)
    await seed_other_company(db)
    company_id = salon.tenant.company_id
    async with db.transaction(company_id) as session:
        result = await trends(session, company_id, NOW, TZ)
    assert result.timezone == TZ
    assert result.currency == "EUR"
    assert result.other_fees == (("CHF", Decimal("5.00")),)
    assert len(result.days) == 30
    assert result.days[0].day == date(2026, 10, 7)
    assert result.days[-1].day == date(2026, 11, 5)
    assert nonzero(result) == {
        date(2026, 10, 7): {"bookings_other": 1},
        date(2026, 10, 20): {"no_shows": 1},
        date(2026, 10, 25): {
            "bookings_agent": 2,
            "bookings_other": 1,
            "agent_calls": 1,
            "callbacks": 1,
            "no_shows": 1,
            "fees": Decimal("10.10"),
        },
        date(2026, 10, 26): {"bookings_other": 1, "cancellations": 1},
        date(2026, 10, 30): {"fees": Decimal("0.30")},
        date(2026, 11, 1): {"cancellations": 1, "fees": Decimal("19.75")},
        date(2026, 11, 2): {"agent_calls": 2, "callbacks": 1},
        date(2026, 11, 5): {"bookings_agent": 1},
    }
    oct25 = result.days[18]
    assert oct25.day == date(2026, 10, 25) and oct25.bookings == 3
    assert all(
        isinstance(d.fees, Decimal) and d.fees.as_tuple().exponent == -2 for d in result.days
    )
    assert result.series("fees")[25] == Decimal("19.75")


async def test_the_other_company_sees_only_its_rows(db: Database) -> None:
    salon = await seed_company(db)
    other = await create_salon(db)
    s = Seeder(db, other)
    s.appointment("2026-11-01T10:00:00", source="agent")
    s.fee("2026-11-01T10:00:00", "3.00", "USD")
    s.fee("2026-11-02T10:00:00", "4.00", "USD")
    s.fee("2026-11-02T11:00:00", "9.00", "EUR")
    await s.save()
    company_id = other.tenant.company_id
    async with db.transaction(company_id) as session:
        result = await trends(session, company_id, NOW, TZ, days=7)
    assert salon.tenant.company_id != company_id
    assert result.currency == "USD"  # two USD fees against one in EUR
    assert result.other_fees == (("EUR", Decimal("9.00")),)
    assert [d.day for d in result.days] == [date(2026, 10, 30) + timedelta(n) for n in range(7)]
    assert nonzero(result) == {
        date(2026, 11, 1): {"bookings_agent": 1, "fees": Decimal("3.00")},
        date(2026, 11, 2): {"fees": Decimal("4.00")},
    }


async def test_an_empty_company_has_zero_days_and_euro(db: Database) -> None:
    # One day: no CASE, and the calls' COALESCE is the only mention of the table (the
    # tenant filter needs the entity in the FROM to see it).
    salon = await create_salon(db)
    await seed_other_company(db)
    company_id = salon.tenant.company_id
    async with db.transaction(company_id) as session:
        result = await trends(session, company_id, NOW, "Asia/Kolkata", days=1)
    assert result == Trends("Asia/Kolkata", "EUR", (DayTrend(date(2026, 11, 5)),), ())


async def test_a_session_of_another_scope_is_refused(db: Database) -> None:
    salon = await create_salon(db)
    other = await create_salon(db)
    for scope in (other.tenant.company_id, SYSTEM):
        async with db.transaction(scope) as session:
            with pytest.raises(TenantNotSet):
                await trends(session, salon.tenant.company_id, NOW, TZ)


def test_window_days_are_local_and_bounded() -> None:
    # 23:30 UTC on Nov 5 is already Nov 6 in Berlin.
    assert window_days(utc("2026-11-05T23:30:00"), TZ, 2) == [date(2026, 11, 5), date(2026, 11, 6)]
    for days in (0, -1, 367):
        with pytest.raises(ValueError, match="days"):
            window_days(NOW, TZ, days)
