"""The bench's data: one tenant with a busy branch and a booking branch, and the slot plan.

- "Mitte" (from `create_salon`, plus three staff): 5 staff qualified for a 30-min service
  (10 min buffer after), Mon-Sat 09:00-12:30 and 13:00-18:00, holding 2,000 appointments
  (10 % cancelled) spread over its staff and the next 8 weeks: about 250 fall into any 7 days.
- 100 more companies ("the seeds' production test 1"), each with one branch and an operator
  key; the effective-config scenario sets a company and a branch policy for each.
- "Nord": 20 staff qualified for "Bartpflege" (30 min, no buffer, bound to Nord), same hours,
  its own inbound number for the agent. Every booking of the bench lands here, on a distinct
  (staff, start) from `SlotPlan`, so no two requests ever compete for a slot.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.models import (
    Appointment,
    Branch,
    Customer,
    PhoneNumber,
    Service,
    Staff,
    StaffService,
    WorkingHours,
)
from shared.security.api_keys import issue_key
from tests.booking.agent_support import enable_retell
from tests.support.factories import Salon, create_salon, create_tenant

ZONE = ZoneInfo("Europe/Berlin")
HOURS = ((time(9), time(12, 30)), (time(13), time(18)))
EXTRA_BUSY_STAFF = ("Clara", "David", "Emma")  # create_salon brings Anna and Ben
BOOK_STAFF = (
    "Anton", "Berta", "Carl", "Dora", "Emil", "Frida", "Gustav", "Hanna", "Ingo", "Jonas",
    "Karla", "Ludwig", "Marta", "Nils", "Olga", "Paul", "Rosa", "Simon", "Tilda", "Viktor",
)  # fmt: skip
BOOK_SERVICE = "Bartpflege"
# Starts of a 30-min appointment on a 30-min grid inside HOURS: 7 before noon, 10 after.
BOOK_TIMES = tuple(time(9 + m // 60, m % 60) for m in range(0, 181, 30)) + tuple(
    time(13 + m // 60, m % 60) for m in range(0, 271, 30)
)
# Where Mitte's appointments start: 40 min blocked each, 45 min apart.
BUSY_GRID = tuple(time(9 + m // 60, m % 60) for m in (0, 45, 90, 135)) + tuple(
    time(13 + m // 60, m % 60) for m in (0, 45, 90, 135, 180, 225, 270)
)
BUSY_APPOINTMENTS = 2000
EFFECTIVE_COMPANIES = 100
BUSY_WEEKS = 8


def phone(n: int) -> str:
    """The n-th distinct, valid German mobile number (a new customer per number)."""
    return f"+49151{10_000_000 + n}"


def local_day(offset: int) -> date:
    return datetime.now(ZONE).date() + timedelta(days=offset)


def local_start(day: date, at: time) -> datetime:
    return datetime.combine(day, at, tzinfo=ZONE)


@dataclass(frozen=True)
class BenchTenant:
    salon: Salon  # the busy branch Mitte, its service, the admin key
    service_key: str  # a platform key with the "service" scope, as booking asks policy
    busy_staff_ids: tuple[str, ...]
    book_branch_id: str
    book_service_id: str
    book_staff: tuple[tuple[str, str], ...]  # (id, name)
    book_number: str  # Nord's inbound number
    customer_id: str  # an existing customer, for the baseline's bookings
    evaluate_ids: tuple[str, ...]  # confirmed future appointments of Mitte

    @property
    def company_id(self) -> str:
        return self.salon.tenant.company_id


def _hours(staff_id: str) -> list[WorkingHours]:
    return [
        WorkingHours(staff_id=staff_id, weekday=weekday, start_time=start, end_time=end)
        for weekday in range(6)
        for start, end in HOURS
    ]


async def _add_busy_staff(db: Database, salon: Salon) -> tuple[str, ...]:
    async with db.transaction(salon.tenant.company_id) as session:
        staff = [Staff(branch_id=salon.branch_id, name=name) for name in EXTRA_BUSY_STAFF]
        session.add_all(staff)
        await session.flush()
        for member in staff:
            session.add(StaffService(staff_id=member.id, service_id=salon.service_id))
            session.add_all(_hours(member.id))
    return (*salon.staff_ids, *(member.id for member in staff))


async def _add_booking_branch(db: Database, company_id: str) -> tuple[str, str, list[Staff], str]:
    number = "+49306" + str(uuid.uuid4().int)[:7]
    async with db.transaction(company_id) as session:
        branch = Branch(name="Nord", timezone="Europe/Berlin", city="Berlin")
        session.add(branch)
        await session.flush()
        service = Service(
            name=BOOK_SERVICE, duration_minutes=30, price=Decimal("28.00"), branch_id=branch.id
        )
        staff = [Staff(branch_id=branch.id, name=name) for name in BOOK_STAFF]
        session.add_all([service, *staff])
        await session.flush()
        for member in staff:
            session.add(StaffService(staff_id=member.id, service_id=service.id))
            session.add_all(_hours(member.id))
        session.add(PhoneNumber(number=number, branch_id=branch.id))
    return branch.id, service.id, staff, number


async def _fill_busy_branch(
    db: Database, salon: Salon, staff_ids: tuple[str, ...]
) -> tuple[str, tuple[str, ...]]:
    """2,000 appointments of 200 customers in Mitte; (a customer id, evaluable appointment ids)."""
    rng = random.Random(20261123)
    now = datetime.now(UTC)
    company_id = salon.tenant.company_id
    customers: list[dict[str, Any]] = [
        {
            "id": str(uuid.uuid4()),
            "company_id": company_id,
            "name": f"Stammkunde {i}",
            "phone": phone(900_000 + i),
            "language": "de",
            "created_at": now,
            "updated_at": now,
        }
        for i in range(200)
    ]
    positions = [
        (staff_id, local_day(offset), at)
        for offset in range(1, 7 * BUSY_WEEKS + 1)
        if local_day(offset).weekday() < 6
        for staff_id in staff_ids
        for at in BUSY_GRID
    ]
    rows: list[dict[str, Any]] = []
    for staff_id, day, at in rng.sample(positions, BUSY_APPOINTMENTS):
        start = local_start(day, at).astimezone(UTC)
        end = start + timedelta(minutes=30)
        cancelled = rng.random() < 0.1
        rows.append(
            {
                "id": str(uuid.uuid4()),
                "company_id": company_id,
                "branch_id": salon.branch_id,
                "service_id": salon.service_id,
                "staff_id": staff_id,
                "customer_id": rng.choice(customers)["id"],
                "starts_at": start,
                "ends_at": end,
                "blocked_from": start,
                "blocked_until": end + timedelta(minutes=10),
                "status": "cancelled" if cancelled else "confirmed",
                "sync_status": "local_only",
                "source": "api",
                "price": Decimal("28.00"),
                "currency": "EUR",
                "version": 1,
                "created_at": now,
                "updated_at": now,
            }
        )
    async with db.transaction(SYSTEM) as session:
        await session.execute(sa.insert(Customer), customers)
        await session.execute(sa.insert(Appointment), rows)
    horizon = now + timedelta(days=3)
    evaluable = [r["id"] for r in rows if r["status"] == "confirmed" and r["starts_at"] > horizon]
    return customers[0]["id"], tuple(evaluable[:200])


ANALYZED_TABLES = (
    "appointments", "customers", "staff", "staff_services", "working_hours", "time_off",
    "services", "branches", "companies", "appointment_modifications",
)  # fmt: skip


async def analyze_tables(db: Database) -> None:
    """Refresh the optimizer's statistics after the bulk seeding, as a running database has
    them: InnoDB recomputes them only in the background after 10 % of a table changed, and
    a query planned on the empty tables' figures picks the wrong index (measured: the staff
    query's working-hours subquery scanned the company's 300 rows per staff member, 2.1 ms
    instead of 0.65 ms)."""
    if db.is_sqlite:
        return
    async with db.engine.connect() as connection:
        await connection.exec_driver_sql("ANALYZE TABLE " + ", ".join(ANALYZED_TABLES))


async def create_bench_tenant(db: Database) -> BenchTenant:
    salon = await create_salon(db)
    await enable_retell(db, salon)
    busy_staff = await _add_busy_staff(db, salon)
    branch_id, service_id, staff, number = await _add_booking_branch(db, salon.tenant.company_id)
    customer_id, evaluate_ids = await _fill_busy_branch(db, salon, busy_staff)
    async with db.transaction(SYSTEM) as session:
        service_key = issue_key(session, company_id=None, name="services", scopes=["service"])
    await analyze_tables(db)
    return BenchTenant(
        salon=salon,
        service_key=service_key.plaintext,
        busy_staff_ids=busy_staff,
        book_branch_id=branch_id,
        book_service_id=service_id,
        book_staff=tuple((member.id, member.name) for member in staff),
        book_number=number,
        customer_id=customer_id,
        evaluate_ids=evaluate_ids,
    )


@dataclass(frozen=True)
class CompanyPolicy:
    """One of the effective-config scenario's companies: its admin key and its one branch."""

    company_id: str
    key: str
    branch_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def create_policy_companies(db: Database, count: int) -> tuple[CompanyPolicy, ...]:
    """`count` companies with one branch each (their policies are set through the API)."""
    companies = []
    for i in range(count):
        tenant = await create_tenant(db, name=f"Bench Policy Co {i:03d} {uuid.uuid4().hex[:6]}")
        async with db.transaction(tenant.company_id) as session:
            branch = Branch(name=f"Filiale {i:03d}", timezone="Europe/Berlin", city="Berlin")
            session.add(branch)
        companies.append(CompanyPolicy(tenant.company_id, tenant.admin_key, branch.id))
    return tuple(companies)


class SlotPlan:
    """Distinct (staff id, start) pairs in Nord, ordered by day, then time, then staff.

    Consecutive pairs differ in staff, so N concurrent requests lock N different staff rows.
    Days run from the day after tomorrow to 55 days ahead (inside the 60-day window).
    """

    def __init__(self, staff_ids: list[str], first_offset: int = 2, last_offset: int = 55) -> None:
        self.staff_ids = staff_ids
        self.groups = [
            local_start(local_day(offset), at)
            for offset in range(first_offset, last_offset + 1)
            if local_day(offset).weekday() < 6
            for at in BOOK_TIMES
        ]
        self.taken = 0

    @property
    def capacity(self) -> int:
        return len(self.groups) * len(self.staff_ids)

    def take(self, count: int, *, whole_groups: bool = False) -> list[tuple[str, datetime]]:
        """The next `count` pairs; `whole_groups` also reserves the rest of the last start time
        (for "any staff" requests, where the service picks the staff member)."""
        size = len(self.staff_ids)
        end = self.taken + count
        if whole_groups:
            end = -(-end // size) * size
        if end > self.capacity:
            raise RuntimeError(f"slot plan exhausted ({self.capacity} slots)")
        pairs = [
            (self.staff_ids[k % size], self.groups[k // size]) for k in range(self.taken, end)
        ][:count]
        self.taken = end
        return pairs
