"""Plain async factories for test data; each test makes its own company, so tests never collide."""

from __future__ import annotations

import itertools
import random
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.models import Company
from shared.security.api_keys import issue_key


@dataclass(frozen=True)
class Tenant:
    company_id: str
    admin_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}


async def create_tenant(
    db: Database, name: str | None = None, scopes: list[str] | None = None
) -> Tenant:
    """A new company with one API key (admin scope unless told otherwise)."""
    async with db.transaction(SYSTEM) as session:
        company = Company(name=name or f"Test Co {uuid.uuid4().hex[:8]}")
        session.add(company)
        await session.flush()
        issued = issue_key(session, company_id=company.id, name="test", scopes=scopes or ["admin"])
    return Tenant(company_id=company.id, admin_key=issued.plaintext)


async def create_platform_key(db: Database, scopes: list[str] | None = None) -> str:
    """A platform key (no company): callers must send X-Company-ID."""
    async with db.transaction(SYSTEM) as session:
        issued = issue_key(session, company_id=None, name="platform", scopes=scopes or ["admin"])
    return issued.plaintext


@dataclass(frozen=True)
class Salon:
    """A tenant ready to book: one branch, a 30-min service (10 min buffer after), two staff."""

    tenant: Tenant
    branch_id: str
    service_id: str
    staff_ids: tuple[str, str]
    phone_number: str

    @property
    def headers(self) -> dict[str, str]:
        return self.tenant.headers


# The salons' inbound numbers: unique per test process (one database each), from a random
# start. The first 7 digits of a random uuid's integer collided now and then (a birthday
# problem over the thousands of salons one database holds: the CI run of 2026-12-08).
_SALON_NUMBERS = itertools.count(random.randrange(1_000_000, 8_000_000))


async def create_salon(db: Database, *, buffer_after: int = 10, duration: int = 30) -> Salon:
    """Mon-Sat 09:00-12:30 and 13:00-18:00 for both staff members, Europe/Berlin."""
    from datetime import time
    from decimal import Decimal

    from shared.models import Branch, PhoneNumber, Service, Staff, StaffService, WorkingHours

    tenant = await create_tenant(db)
    number = f"+49305{next(_SALON_NUMBERS):07d}"
    async with db.transaction(tenant.company_id) as session:
        branch = Branch(name="Mitte", timezone="Europe/Berlin", city="Berlin")
        session.add(branch)
        await session.flush()
        service = Service(
            name="Herrenhaarschnitt",
            duration_minutes=duration,
            price=Decimal("28.00"),
            buffer_after_minutes=buffer_after,
        )
        staff = [Staff(branch_id=branch.id, name=name) for name in ("Anna", "Ben")]
        session.add_all([service, *staff])
        await session.flush()
        for member in staff:
            session.add(StaffService(staff_id=member.id, service_id=service.id))
            for weekday in range(6):
                for start, end in ((time(9), time(12, 30)), (time(13), time(18))):
                    session.add(
                        WorkingHours(
                            staff_id=member.id, weekday=weekday, start_time=start, end_time=end
                        )
                    )
        session.add(PhoneNumber(number=number, branch_id=branch.id))
    return Salon(tenant, branch.id, service.id, (staff[0].id, staff[1].id), number)


def next_weekday(weekday: int, at_least_days: int = 3) -> date:
    """The first date with `weekday` (0 = Monday) at least `at_least_days` from today."""
    day = date.today() + timedelta(days=at_least_days)
    while day.weekday() != weekday:
        day += timedelta(days=1)
    return day


def salon_appointment(
    salon: Salon, customer_id: str, start: datetime, staff_id: str | None = None, **fields: Any
) -> Any:
    """An Appointment row of `create_salon`'s 30-min service (10 min buffer after), for a
    test to add to its session; `fields` override the defaults (status, source, ...)."""
    from decimal import Decimal

    from shared.models import Appointment

    values: dict[str, Any] = {
        "branch_id": salon.branch_id,
        "service_id": salon.service_id,
        "staff_id": staff_id or salon.staff_ids[0],
        "customer_id": customer_id,
        "starts_at": start,
        "ends_at": start + timedelta(minutes=30),
        "blocked_from": start,
        "blocked_until": start + timedelta(minutes=40),
        "price": Decimal("28.00"),
        **fields,
    }
    return Appointment(**values)
