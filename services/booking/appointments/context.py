"""Everything a booking needs to know, read in ONE statement: service, staff, branch, company,
the staff member's qualification and weekly hours, the customer behind the phone number, and
which of the drawn booking-reference candidates the company has already given out.

Without a staff member ("any staff") the same statement reads the service, the company, the
branches it is searched in, the customer and the references (`load_offer`); the staff member
is then chosen from the free slots and the context built from what was read (`for_staff`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.scheduling.availability import ServiceSpec, WorkingInterval
from services.booking.scheduling.calendar_loader import (
    StaffRow,
    parse_weekly_hours,
    weekly_hours_column,
)
from services.booking.scheduling.rules import BookingRules, rules_for
from shared.errors import InvalidInput
from shared.models import Appointment, Branch, Company, Customer, Service, Staff, StaffService


@dataclass(frozen=True)
class StaffMember:
    """What a booking needs of its staff member."""

    id: str
    name: str
    branch_id: str
    active: bool = True


@dataclass(frozen=True)
class BookingContext:
    service: Service
    staff: StaffMember
    branch: Branch
    company: Company
    qualified: bool
    working_hours: tuple[WorkingInterval, ...]
    customer_id: str | None
    customer_name: str | None
    taken_references: frozenset[str] = field(default_factory=frozenset)

    def free_reference(self, candidates: Sequence[str]) -> str | None:
        """A candidate no appointment of the company has (None: let the model draw one)."""
        return next((c for c in candidates if c not in self.taken_references), None)

    @property
    def spec(self) -> ServiceSpec:
        return service_spec(self.service)

    @property
    def rules(self) -> BookingRules:
        return rules_for(self.company, self.branch)

    @property
    def min_notice(self) -> timedelta:
        return self.rules.min_notice

    @property
    def window_days(self) -> int:
        return self.rules.window_days

    @property
    def timezone(self) -> str:
        return self.branch.timezone


def service_spec(service: Service) -> ServiceSpec:
    """The service as the availability engine reads it."""
    return ServiceSpec(
        service.duration_minutes,
        service.buffer_before_minutes,
        service.buffer_after_minutes,
        service.slot_step_minutes or 15,
    )


def _customer_and_references(company_id: Any, with_phone: bool) -> list[Any]:
    """The customer behind the phone number (id, name) and the references already taken, as
    scalar subqueries of the company `company_id` (a column of the outer statement)."""
    # No phone given: the customer without a phone number, as `Customer.phone == None` read.
    phone_matches = (
        Customer.phone == sa.bindparam("phone") if with_phone else Customer.phone.is_(None)
    )
    customer = sa.select(Customer.id, Customer.name).where(
        Customer.company_id == company_id, phone_matches
    )
    # Saves the model's own lookup at flush (shared/models/appointment.py) on this hot path.
    taken = (
        sa.select(sa.func.group_concat(Appointment.reference))
        .where(
            Appointment.company_id == company_id,
            Appointment.reference.in_(sa.bindparam("references", expanding=True)),
        )
        .scalar_subquery()
    )
    return [
        customer.with_only_columns(Customer.id).scalar_subquery(),
        customer.with_only_columns(Customer.name).scalar_subquery(),
        taken,
    ]


def _context_statement(with_phone: bool) -> sa.Select[Any]:
    """The one statement of `load_context` (built once per phone given or not: constructing
    and keying it per call cost more than running it)."""
    qualified = (
        sa.select(sa.func.count())
        .select_from(StaffService)
        .where(StaffService.staff_id == Staff.id, StaffService.service_id == Service.id)
        .scalar_subquery()
    )
    columns: list[Any] = [
        Service,
        Staff,
        Branch,
        Company,
        qualified,
        weekly_hours_column(),
        *_customer_and_references(Staff.company_id, with_phone),
    ]
    return (
        sa.select(*columns)
        .select_from(Staff)
        .join(Service, Service.id == sa.bindparam("service_id"))
        .join(Branch, Branch.id == Staff.branch_id)
        .join(Company, Company.id == Staff.company_id)
        .where(Staff.id == sa.bindparam("staff_id"))
    )


_CONTEXT: Final = {with_phone: _context_statement(with_phone) for with_phone in (False, True)}
_SERVICE_EXISTS: Final = sa.select(Service.id).where(Service.id == sa.bindparam("service_id"))


async def load_context(
    session: AsyncSession,
    *,
    service_id: str,
    staff_id: str,
    phone: str | None,
    references: Sequence[str] = (),
) -> BookingContext:
    """Load the booking context; unknown service or staff -> 422 naming the field.
    `references`: booking-reference candidates to check (`taken_references`)."""
    params = {
        "service_id": service_id,
        "staff_id": staff_id,
        "phone": phone,
        "references": list(references),
    }
    row = (await session.execute(_CONTEXT[phone is not None], params)).first()
    if row is None:
        found = await session.scalar(_SERVICE_EXISTS, {"service_id": service_id})
        if found is None:
            raise InvalidInput("Unknown service.", field="service_id")
        raise InvalidInput("Unknown staff member.", field="staff_id")
    service, staff, branch, company, n_qualified, hours_text, cust_id, cust_name, taken = row
    return BookingContext(
        service=service,
        staff=StaffMember(staff.id, staff.name, staff.branch_id, staff.active),
        branch=branch,
        company=company,
        qualified=bool(n_qualified),
        working_hours=parse_weekly_hours(hours_text),
        customer_id=cust_id,
        customer_name=cust_name,
        taken_references=_taken(taken),
    )


def _taken(concatenated: str | None) -> frozenset[str]:
    return frozenset(concatenated.split(",")) if concatenated else frozenset()


@dataclass(frozen=True)
class Offer:
    """A service with its company, the active branches it is searched in (name order), the
    customer behind the phone number and the taken reference candidates."""

    service: Service
    company: Company
    branches: tuple[Branch, ...]
    customer_id: str | None
    customer_name: str | None
    taken_references: frozenset[str]

    def for_staff(self, staff: StaffRow) -> BookingContext:
        """The booking context with `staff` (a qualified active member of one of the branches)."""
        branch = next(b for b in self.branches if b.id == staff.branch_id)
        return BookingContext(
            service=self.service,
            staff=StaffMember(staff.id, staff.name, staff.branch_id),
            branch=branch,
            company=self.company,
            qualified=True,
            working_hours=staff.hours,
            customer_id=self.customer_id,
            customer_name=self.customer_name,
            taken_references=self.taken_references,
        )


def _offer_statement(with_phone: bool) -> sa.Select[Any]:
    """The one statement of `load_offer`: one row per branch searched (the given branch, else
    the service's, else every active one), or one row without a branch when none is."""
    wanted = sa.func.coalesce(sa.bindparam("branch_id", type_=sa.String), Service.branch_id)
    columns: list[Any] = [
        Service,
        Company,
        Branch,
        *_customer_and_references(Service.company_id, with_phone),
    ]
    return (
        sa.select(*columns)
        .select_from(Service)
        .join(Company, Company.id == Service.company_id)
        .outerjoin(
            Branch,
            sa.and_(
                Branch.active.is_(True),
                sa.or_(wanted.is_(None), Branch.id == wanted),
            ),
        )
        .where(Service.id == sa.bindparam("service_id"))
        .order_by(Branch.name, Branch.id)
    )


_OFFER: Final = {with_phone: _offer_statement(with_phone) for with_phone in (False, True)}


async def load_offer(
    session: AsyncSession,
    *,
    service_id: str,
    branch_id: str | None,
    phone: str | None = None,
    references: Sequence[str] = (),
    exact_branch: bool = False,
) -> Offer:
    """Read a service's offer; unknown or inactive service, unknown branch, or a branch the
    service is not offered at -> 422 (checked in that order). `exact_branch`: search the
    given branch even if the service belongs to another (the agent's availability question)."""
    params = {
        "service_id": service_id,
        "branch_id": branch_id,
        "phone": phone,
        "references": list(references),
    }
    rows = (await session.execute(_OFFER[phone is not None], params)).all()
    if not rows or not rows[0][0].active:
        raise InvalidInput("Unknown service.", field="service_id")
    service, company, _, cust_id, cust_name, taken = rows[0]
    branches = tuple(row[2] for row in rows if row[2] is not None)
    if (branch_id or service.branch_id) is not None and not branches:
        raise InvalidInput("Unknown branch.", field="branch_id")
    mismatch = service.branch_id is not None and branch_id and branch_id != service.branch_id
    if mismatch and not exact_branch:
        raise InvalidInput("This service is not offered at that branch.", field="branch_id")
    return Offer(service, company, branches, cust_id, cust_name, _taken(taken))
