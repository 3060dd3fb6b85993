"""The demo tenant: a hair salon with two branches, created once per name and found again after.

Every part is looked up by its natural key (company name, branch/service/staff name, the
branch's inbound number) before it is created, so seeding the same name again returns the same
ids and adds no rows. Keys are stored hashed, so the admin key named "demo" is kept in
plain text in a 0600 file of the state dir (tools/key_store.py) and printed again while it
verifies: a key printed earlier keeps working. Without a file (or once it no longer
verifies) a new key is issued and earlier "demo" keys are revoked.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.engine import Database
from shared.db.scoped import scoped
from shared.db.tenancy import SYSTEM, bind_tenant
from shared.db.types import utcnow
from shared.models import (
    ApiKey,
    Branch,
    Company,
    PhoneNumber,
    Service,
    Staff,
    StaffService,
    WorkingHours,
)
from shared.phones import e164
from shared.security.api_keys import issue_key
from tools.key_store import demo_key_file, kept_key, write_key

DEMO_COMPANY_NAME = "Demo Salon"
DEMO_KEY_NAME = "demo"
TIMEZONE = "Europe/Berlin"
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class _BranchSpec:
    name: str
    address_line: str
    postal_code: str
    city: str
    area_code: str  # German area code without the leading 0: the inbound number's prefix


@dataclass(frozen=True)
class _ServiceSpec:
    name: str
    duration_minutes: int
    price: Decimal
    description: str


@dataclass(frozen=True)
class _StaffSpec:
    name: str
    branch: str
    services: tuple[str, ...]


BRANCHES = (
    _BranchSpec("Berlin Mitte", "Rosenthaler Straße 40", "10178", "Berlin", "30"),
    _BranchSpec("Hamburg Altona", "Ottenser Hauptstraße 10", "22765", "Hamburg", "40"),
)
SERVICES = (
    _ServiceSpec("Herrenhaarschnitt", 30, Decimal("28.00"), "Waschen, Schneiden, Styling"),
    _ServiceSpec("Damenhaarschnitt", 60, Decimal("49.00"), "Waschen, Schneiden, Föhnen"),
    _ServiceSpec("Färben", 90, Decimal("79.00"), "Coloration inklusive Pflege"),
    _ServiceSpec("Bartpflege", 20, Decimal("18.00"), "Bart trimmen und konturieren"),
)
STAFF = (
    _StaffSpec("Anna Schmidt", "Berlin Mitte", ("Herrenhaarschnitt", "Damenhaarschnitt", "Färben")),
    _StaffSpec("Lukas Weber", "Berlin Mitte", ("Herrenhaarschnitt", "Bartpflege")),
    _StaffSpec("Mia Fischer", "Hamburg Altona", tuple(s.name for s in SERVICES)),
)
# (weekday, start, end), weekday 0 = Monday, branch-local time; 12:30-13:00 is the lunch break.
WEEKLY_HOURS: tuple[tuple[int, time, time], ...] = (
    *(
        interval
        for weekday in range(5)
        for interval in (
            (weekday, time(9, 0), time(12, 30)),
            (weekday, time(13, 0), time(18, 0)),
        )
    ),
    (5, time(9, 0), time(14, 0)),
)


class DemoBranch(BaseModel, frozen=True):
    id: str
    name: str
    phone_number: str


@dataclass(frozen=True)
class DemoService:
    id: str
    name: str
    duration_minutes: int
    price: Decimal


class DemoStaff(BaseModel, frozen=True):
    id: str
    name: str
    branch_id: str


class DemoServiceOut(BaseModel):
    id: str
    name: str
    duration_minutes: int
    price: str  # 2 places, e.g. "35.00"


class SeedDemoAnswer(BaseModel):
    """What `seed-demo --json` prints (the demo's keys included: it is the operator's)."""

    company_id: str
    api_key: str
    retell_api_key: str
    calcom_webhook_secret: str
    timezone: str
    branches: list[DemoBranch]
    services: list[DemoServiceOut]
    staff: list[DemoStaff]


@dataclass(frozen=True)
class DemoTenant:
    company_id: str
    company_name: str
    api_key: str
    retell_api_key: str
    calcom_webhook_secret: str
    timezone: str
    branches: tuple[DemoBranch, ...]
    services: tuple[DemoService, ...]
    staff: tuple[DemoStaff, ...]
    # The api_key was issued by this call (earlier "demo" keys were revoked); not in the JSON.
    new_key: bool = False

    def answer(self) -> SeedDemoAnswer:
        """The `seed-demo --json` contract: exactly these keys, money as a 2-place string."""
        return SeedDemoAnswer(
            company_id=self.company_id,
            api_key=self.api_key,
            retell_api_key=self.retell_api_key,
            calcom_webhook_secret=self.calcom_webhook_secret,
            timezone=self.timezone,
            branches=list(self.branches),
            services=[
                DemoServiceOut(
                    id=s.id,
                    name=s.name,
                    duration_minutes=s.duration_minutes,
                    price=str(s.price.quantize(_CENT)),
                )
                for s in self.services
            ],
            staff=list(self.staff),
        )

    def as_json(self) -> dict[str, Any]:
        """`answer()` as JSON-ready data (what `seed-demo --json` prints)."""
        return self.answer().model_dump(mode="json")


async def seed_demo(
    db: Database, company_name: str = DEMO_COMPANY_NAME, key_dir: Path | None = None
) -> DemoTenant:
    """Create the demo tenant `company_name`, or complete and return the existing one.

    With `key_dir`, the admin key kept there is returned again while it verifies (a new one
    is kept there); without, every call issues a new key and revokes the previous one.
    """
    attempts = 3
    for attempt in range(1, attempts + 1):
        try:
            async with db.transaction(SYSTEM) as session:
                tenant = await _ensure_demo(session, company_name, key_dir)
            if key_dir is not None and tenant.new_key:
                write_key(demo_key_file(key_dir, tenant.company_id), tenant.api_key)
            return tenant
        except IntegrityError:
            # A concurrent seed of the same name (or a rare number clash) won the insert;
            # the next attempt finds its rows.
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


async def _ensure_demo(
    session: AsyncSession, company_name: str, key_dir: Path | None
) -> DemoTenant:
    company = await _ensure_company(session, company_name)
    # From here on the tenant guard scopes every query and new row to this company.
    bind_tenant(session, company.id)
    branches = {spec.name: await _ensure_branch(session, spec) for spec in BRANCHES}
    numbers = {
        spec.name: await _ensure_inbound_number(session, company_name, spec, branches[spec.name])
        for spec in BRANCHES
    }
    services = {spec.name: await _ensure_service(session, spec) for spec in SERVICES}
    staff = {
        spec.name: await _ensure_staff(session, spec, branches[spec.branch].id) for spec in STAFF
    }
    await _ensure_qualifications(session, staff, services)
    await _ensure_working_hours(session, staff)
    api_key = None
    if key_dir is not None:
        api_key = await kept_key(
            session, demo_key_file(key_dir, company.id), company_id=company.id, scope="admin"
        )
    new_key = api_key is None
    if api_key is None:
        api_key = await _reissue_demo_key(session, company.id)
    assert company.retell_api_key is not None and company.calcom_webhook_secret is not None
    return DemoTenant(
        company_id=company.id,
        company_name=company.name,
        api_key=api_key,
        retell_api_key=company.retell_api_key,
        calcom_webhook_secret=company.calcom_webhook_secret,
        timezone=company.timezone,
        branches=tuple(
            DemoBranch(id=branches[s.name].id, name=s.name, phone_number=numbers[s.name])
            for s in BRANCHES
        ),
        services=tuple(
            DemoService(
                id=services[s.name].id,
                name=s.name,
                duration_minutes=services[s.name].duration_minutes,
                price=services[s.name].price,
            )
            for s in SERVICES
        ),
        staff=tuple(
            DemoStaff(id=staff[s.name].id, name=s.name, branch_id=staff[s.name].branch_id)
            for s in STAFF
        ),
        new_key=new_key,
    )


async def _ensure_company(session: AsyncSession, name: str) -> Company:
    # The row lock serializes seeds of one name (on MariaDB; SQLite takes its write lock at BEGIN).
    company = await session.scalar(select(Company).where(Company.name == name).with_for_update())
    if company is None:
        company = Company(name=name, timezone=TIMEZONE, settings={})
        session.add(company)
    if company.retell_api_key is None:
        company.retell_api_key = f"key_{secrets.token_hex(16)}"
    if company.calcom_webhook_secret is None:
        company.calcom_webhook_secret = secrets.token_urlsafe(32)
    await session.flush()
    return company


async def _ensure_branch(session: AsyncSession, spec: _BranchSpec) -> Branch:
    branch = await session.scalar(select(Branch).where(Branch.name == spec.name))
    if branch is None:
        branch = Branch(
            name=spec.name,
            timezone=TIMEZONE,
            address_line=spec.address_line,
            postal_code=spec.postal_code,
            city=spec.city,
            country="DE",
        )
        session.add(branch)
        await session.flush()
    return branch


async def _ensure_inbound_number(
    session: AsyncSession, company_name: str, spec: _BranchSpec, branch: Branch
) -> str:
    existing = await session.scalar(
        select(PhoneNumber.number)
        .where(PhoneNumber.branch_id == branch.id)
        .order_by(PhoneNumber.created_at, PhoneNumber.id)
        .limit(1)
    )
    if existing is not None:
        return existing
    for number in _candidate_numbers(company_name, spec.area_code):
        # Numbers are unique across all companies: look beyond this tenant.
        taken = await session.scalar(
            scoped(select(PhoneNumber.id).where(PhoneNumber.number == number), SYSTEM)
        )
        if taken is None:
            session.add(PhoneNumber(number=number, branch_id=branch.id, label=spec.name))
            if branch.phone is None:
                branch.phone = number
            await session.flush()
            return number
    raise RuntimeError(f"no free demo phone number for {company_name!r} in +49 {spec.area_code}")


def _candidate_numbers(company_name: str, area_code: str, limit: int = 100) -> Iterator[str]:
    """Valid German E.164 numbers derived from the name; the same name, the same first pick."""
    for salt in range(limit):
        digest = hashlib.sha256(f"{company_name}|{area_code}|{salt}".encode()).digest()
        subscriber = str(20_000_000 + int.from_bytes(digest[:8], "big") % 80_000_000)
        number = f"+49{area_code}{subscriber}"
        if e164(number) is not None:
            yield number


async def _ensure_service(session: AsyncSession, spec: _ServiceSpec) -> Service:
    service = await session.scalar(select(Service).where(Service.name == spec.name))
    if service is None:
        service = Service(
            name=spec.name,
            description=spec.description,
            duration_minutes=spec.duration_minutes,
            price=spec.price,
            currency="EUR",
        )
        session.add(service)
        await session.flush()
    return service


async def _ensure_staff(session: AsyncSession, spec: _StaffSpec, branch_id: str) -> Staff:
    member = await session.scalar(
        select(Staff).where(Staff.name == spec.name).order_by(Staff.created_at, Staff.id).limit(1)
    )
    if member is None:
        member = Staff(name=spec.name, branch_id=branch_id)
        session.add(member)
        await session.flush()
    return member


async def _ensure_qualifications(
    session: AsyncSession, staff: dict[str, Staff], services: dict[str, Service]
) -> None:
    rows = await session.execute(select(StaffService.staff_id, StaffService.service_id))
    existing = {(row.staff_id, row.service_id) for row in rows}
    for spec in STAFF:
        for service_name in spec.services:
            pair = (staff[spec.name].id, services[service_name].id)
            if pair not in existing:
                session.add(StaffService(staff_id=pair[0], service_id=pair[1]))
    await session.flush()


async def _ensure_working_hours(session: AsyncSession, staff: dict[str, Staff]) -> None:
    rows = await session.execute(
        select(
            WorkingHours.staff_id,
            WorkingHours.weekday,
            WorkingHours.start_time,
            WorkingHours.end_time,
        )
    )
    existing = {tuple(row) for row in rows}
    for member in staff.values():
        for weekday, start, end in WEEKLY_HOURS:
            if (member.id, weekday, start, end) not in existing:
                session.add(
                    WorkingHours(
                        staff_id=member.id, weekday=weekday, start_time=start, end_time=end
                    )
                )
    await session.flush()


async def _reissue_demo_key(session: AsyncSession, company_id: str) -> str:
    # The session is bound to the company: the tenant filter keeps this to its keys.
    await session.execute(
        update(ApiKey)
        .where(
            ApiKey.company_id == company_id,
            ApiKey.name == DEMO_KEY_NAME,
            ApiKey.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
    )
    issued = issue_key(session, company_id=company_id, name=DEMO_KEY_NAME, scopes=["admin"])
    await session.flush()
    return issued.plaintext
