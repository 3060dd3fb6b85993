"""The policy service's SQL: the subject of an evaluation, a customer's recent changes, and
one scope's stored config. Each read is one function over `Reads` (raw pool or session)."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.scoped import scoped
from shared.db.tenancy import PER_CALL
from shared.hierarchy.chain import Chain
from shared.hierarchy.reads import Reads
from shared.hierarchy.writes import scoped_row
from shared.models import (
    Appointment,
    AppointmentModification,
    Branch,
    Company,
    Customer,
    PolicyConfiguration,
    Service,
)

_M = AppointmentModification
# Built once, scoped per call (shared.db.scoped); the quota index's range scan.
RECENT_MODIFICATIONS: Final = scoped(
    sa.select(_M.created_at).where(
        _M.customer_id == sa.bindparam("customer_id"),
        _M.modification_type == sa.bindparam("modification_type"),
        _M.created_at > sa.bindparam("since"),
    ),
    PER_CALL,
)
# How often an appointment has been moved: correlated to appointments.id in an outer query
# (filtered by company when that query is scoped).
RESCHEDULES_OF_APPOINTMENT: Final = (
    sa.select(sa.func.count())
    .select_from(_M)
    .where(_M.appointment_id == Appointment.id, _M.modification_type == "reschedule")
    .scalar_subquery()
)


def _appointment_statement(count_reschedules: bool) -> sa.Select[Any]:
    a = Appointment
    columns: list[Any] = [
        a.branch_id,
        a.service_id,
        a.staff_id,
        a.starts_at,
        a.status,
        a.price,
        a.currency,
        a.customer_id,
        Branch.timezone,
    ]
    if count_reschedules:
        columns.append(RESCHEDULES_OF_APPOINTMENT.label("moved"))
    return scoped(
        sa.select(*columns)
        .join(Branch, Branch.id == a.branch_id)
        .where(a.id == sa.bindparam("appointment_id")),
        PER_CALL,
    )


# Built once, scoped per call (shared.db.scoped): with and without the reschedule count.
_APPOINTMENT: Final = {flag: _appointment_statement(flag) for flag in (False, True)}


async def appointment(
    source: Reads | AsyncSession,
    company_id: str,
    appointment_id: str,
    *,
    count_reschedules: bool = False,
) -> Any:
    """The appointment (ids, start, status, price as booked, customer), its branch's zone
    and, with `count_reschedules`, how often it has been moved (`moved`): one statement;
    None when the company has no such appointment."""
    statement = _APPOINTMENT[count_reschedules]
    params = {"appointment_id": appointment_id}
    return await Reads.of(source, company_id).first(statement, params)


@functools.cache
def _hypothetical_statement(branch: bool, phone: bool) -> sa.Select[Any]:
    timezone = (
        sa.select(Branch.timezone).where(Branch.id == sa.bindparam("branch_id")).scalar_subquery()
        if branch
        else sa.select(Company.timezone).scalar_subquery()
    )
    customer = (
        sa.select(Customer.id).where(Customer.phone == sa.bindparam("phone")).scalar_subquery()
        if phone
        else sa.null()
    )
    statement = sa.select(
        Service.price, Service.currency, timezone.label("timezone"), customer.label("customer_id")
    ).where(Service.id == sa.bindparam("service_id"))
    return scoped(statement, PER_CALL)


async def hypothetical(
    source: Reads | AsyncSession, chain: Chain, service_id: str, customer_phone: str | None
) -> Any:
    """The service's price and currency, the zone of the chain's branch (else the company's)
    and the id of the customer with `customer_phone` (None if none): one statement."""
    statement = _hypothetical_statement(bool(chain.branch_id), bool(customer_phone))
    params: dict[str, Any] = {"service_id": service_id}
    if chain.branch_id:
        params["branch_id"] = chain.branch_id
    if customer_phone:
        params["phone"] = customer_phone
    return await Reads.of(source, chain.company_id).first(statement, params)


def recent_params(customer_id: str, modification_type: str, since: datetime) -> dict[str, Any]:
    """The parameters of RECENT_MODIFICATIONS (the tenant is given where it runs)."""
    return {"customer_id": customer_id, "modification_type": modification_type, "since": since}


async def recent_modifications(
    source: Reads | AsyncSession,
    company_id: str,
    customer_id: str,
    modification_type: str,
    since: datetime,
) -> list[datetime]:
    """The customer's (of `company_id`) modifications of a type after `since`: the quota
    index's range scan."""
    params = recent_params(customer_id, modification_type, since)
    return await Reads.of(source, company_id).scalars(RECENT_MODIFICATIONS, params)


async def stored_config(
    session: AsyncSession, level: str, entity_id: str, policy_type: str, *, lock: bool = False
) -> PolicyConfiguration | None:
    """The stored config of one scope of the session's company (row-locked with `lock`)."""
    scope = {"level": level, "entity_id": entity_id, "policy_type": policy_type}
    row: PolicyConfiguration | None = await scoped_row(
        session, PolicyConfiguration, scope, lock=lock
    )
    return row
