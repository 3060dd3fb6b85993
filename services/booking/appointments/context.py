"""Everything a booking needs to know, read in ONE statement: service, staff, branch, company,
the staff member's qualification and weekly hours, the customer behind the phone number, and
which of the drawn booking-reference candidates the company has already given out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.scheduling.availability import ServiceSpec, WorkingInterval
from services.booking.scheduling.calendar_loader import parse_weekly_hours, weekly_hours_column
from services.booking.scheduling.rules import BookingRules, rules_for
from shared.errors import InvalidInput
from shared.models import Appointment, Branch, Company, Customer, Service, Staff, StaffService


@dataclass(frozen=True)
class BookingContext:
    service: Service
    staff: Staff
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
        s = self.service
        return ServiceSpec(
            s.duration_minutes,
            s.buffer_before_minutes,
            s.buffer_after_minutes,
            s.slot_step_minutes or 15,
        )

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


def _context_statement(with_phone: bool) -> sa.Select[Any]:
    """The one statement of `load_context` (built once per phone given or not: constructing
    and keying it per call cost more than running it)."""
    qualified = (
        sa.select(sa.func.count())
        .select_from(StaffService)
        .where(StaffService.staff_id == Staff.id, StaffService.service_id == Service.id)
        .scalar_subquery()
    )
    hours = weekly_hours_column()
    # No phone given: the customer without a phone number, as `Customer.phone == None` read.
    phone_matches = (
        Customer.phone == sa.bindparam("phone") if with_phone else Customer.phone.is_(None)
    )
    customer = sa.select(Customer.id, Customer.name).where(
        Customer.company_id == Staff.company_id, phone_matches
    )
    customer_id = customer.with_only_columns(Customer.id).scalar_subquery()
    customer_name = customer.with_only_columns(Customer.name).scalar_subquery()
    # Saves the model's own lookup at flush (shared/models/appointment.py) on this hot path.
    taken = (
        sa.select(sa.func.group_concat(Appointment.reference))
        .where(
            Appointment.company_id == Staff.company_id,
            Appointment.reference.in_(sa.bindparam("references", expanding=True)),
        )
        .scalar_subquery()
    )
    columns: list[Any] = [
        Service,
        Staff,
        Branch,
        Company,
        qualified,
        hours,
        customer_id,
        customer_name,
        taken,
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
        staff=staff,
        branch=branch,
        company=company,
        qualified=bool(n_qualified),
        working_hours=parse_weekly_hours(hours_text),
        customer_id=cust_id,
        customer_name=cust_name,
        taken_references=frozenset(taken.split(",")) if taken else frozenset(),
    )
