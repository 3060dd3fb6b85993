"""The tenant resources of the admin API and the rules that go beyond field validation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.admin import schemas
from services.booking.admin.crud import Resource, Unique
from services.booking.admin.opening_hours.service import staff_hours_within_opening_hours
from shared.db.scoped import scoped
from shared.db.tenancy import SYSTEM
from shared.db.types import utcnow
from shared.errors import Conflict, InvalidInput
from shared.local_time import to_local
from shared.models import (
    LIVE_STATUSES,
    Appointment,
    Branch,
    PhoneNumber,
    RetellAgent,
    Service,
    Staff,
    StaffService,
    TimeOff,
    WorkingHours,
)
from shared.models.base import Base


def _no_upcoming_appointments(column: str, label: str) -> Any:
    """Deleting cascades to appointments: refuse while live ones lie ahead."""

    async def guard(session: AsyncSession, row: Base) -> None:
        stmt = (
            select(Appointment.id)
            .where(
                getattr(Appointment, column) == row.id,  # type: ignore[attr-defined]
                Appointment.status.in_(LIVE_STATUSES),
                Appointment.ends_at > utcnow(),
            )
            .limit(1)
        )
        if (await session.execute(stmt)).first() is not None:
            raise Conflict(
                f"The {label} has upcoming appointments; cancel or move them first, "
                "or set active to false."
            )

    return guard


async def _working_hours_do_not_overlap(
    session: AsyncSession, values: dict[str, Any], current: WorkingHours | None
) -> None:
    # Lock the staff row so two concurrent writers cannot both pass the check (MariaDB;
    # SQLite write transactions are serialized by BEGIN IMMEDIATE anyway).
    await session.execute(select(Staff.id).where(Staff.id == values["staff_id"]).with_for_update())
    stmt = select(WorkingHours).where(
        WorkingHours.staff_id == values["staff_id"],
        WorkingHours.weekday == values["weekday"],
        WorkingHours.start_time < values["end_time"],
        WorkingHours.end_time > values["start_time"],
    )
    if current is not None:
        stmt = stmt.where(WorkingHours.id != current.id)
    clash = (await session.execute(stmt.limit(1))).scalar_one_or_none()
    if clash is not None:
        raise InvalidInput(
            f"overlaps the interval {clash.start_time:%H:%M}-{clash.end_time:%H:%M} "
            "of the same staff member on that weekday",
            field="start_time",
        )


AGENT_TAKEN = "This Retell agent is already assigned."


async def _claim_agent(
    session: AsyncSession, values: dict[str, Any], _current: PhoneNumber | None
) -> None:
    """Claim the number's agent id for the company in `retell_agents` (unique across all
    companies, so calls routed by agent id reach one company). Another company's claim that
    none of its numbers uses any more is taken over; one in use is a 409."""
    agent_id = values.get("retell_agent_id")
    if agent_id is None:
        return
    tenant: str = session.info["tenant"]
    # Agent ids are global: explicit system-scoped statements, on ids and columns only.
    claim = (
        await session.execute(
            scoped(
                select(RetellAgent.id, RetellAgent.company_id).where(
                    RetellAgent.agent_id == agent_id
                ),
                SYSTEM,
            )
        )
    ).first()
    if claim is not None and claim.company_id == tenant:
        return
    if claim is not None:
        in_use = select(PhoneNumber.id).where(
            PhoneNumber.company_id == claim.company_id, PhoneNumber.retell_agent_id == agent_id
        )
        if (await session.execute(scoped(in_use.limit(1), SYSTEM))).first() is not None:
            raise Conflict(AGENT_TAKEN, field="retell_agent_id")
        await session.execute(scoped(delete(RetellAgent).where(RetellAgent.id == claim.id), SYSTEM))
    session.add(RetellAgent(company_id=tenant, agent_id=agent_id))
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent claim of the same agent id won
        raise Conflict(AGENT_TAKEN, field="retell_agent_id") from exc


async def _escalation_chain_names_active_staff(
    session: AsyncSession, values: dict[str, Any], current: Branch | None
) -> None:
    """Each step of a new or changed chain names an active staff member of the company."""
    chain: list[dict[str, Any]] = values.get("callback_escalation_chain") or []
    if not chain or (current is not None and current.callback_escalation_chain == chain):
        return
    ids = {step["staff_id"] for step in chain}
    rows = await session.execute(select(Staff.id, Staff.active).where(Staff.id.in_(ids)))
    active: dict[str, bool] = {staff_id: is_active for staff_id, is_active in rows}
    for index, step in enumerate(chain):
        field = f"callback_escalation_chain[{index}].staff_id"
        if step["staff_id"] not in active:
            raise InvalidInput("names no staff member of your company", field=field)
        if not active[step["staff_id"]]:
            raise InvalidInput("names an inactive staff member", field=field)


async def _time_off_in_branch_time(
    session: AsyncSession, rows: Sequence[TimeOff]
) -> list[schemas.Output]:
    staff_ids = {row.staff_id for row in rows}
    zones: dict[str, str] = {}
    if staff_ids:
        stmt = (
            select(Staff.id, Branch.timezone)
            .join(Branch, Branch.id == Staff.branch_id)
            .where(Staff.id.in_(staff_ids))
        )
        zones = {staff_id: tz for staff_id, tz in await session.execute(stmt)}
    items: list[schemas.Output] = []
    for row in rows:
        tz = zones.get(row.staff_id, "UTC")
        item = schemas.TimeOffOut.model_validate(row)
        local = {"starts_at": to_local(row.starts_at, tz), "ends_at": to_local(row.ends_at, tz)}
        items.append(item.model_copy(update=local))
    return items


BRANCHES = Resource(
    path="/branches",
    label="branch",
    model=Branch,
    create=schemas.BranchCreate,
    out=schemas.BranchOut,
    filters=schemas.BranchFilters,
    order_by=lambda: (Branch.name, Branch.id),
    unique=(Unique(("name",), "A branch with this name exists."),),
    rules=(_escalation_chain_names_active_staff,),
    before_delete=_no_upcoming_appointments("branch_id", "branch"),
)
SERVICES = Resource(
    path="/services",
    label="service",
    model=Service,
    create=schemas.ServiceCreate,
    out=schemas.ServiceOut,
    filters=schemas.ServiceFilters,
    order_by=lambda: (Service.name, Service.id),
    references={"branch_id": Branch},
    unique=(Unique(("name",), "A service with this name exists."),),
    before_delete=_no_upcoming_appointments("service_id", "service"),
)
STAFF = Resource(
    path="/staff",
    label="staff member",
    model=Staff,
    create=schemas.StaffCreate,
    out=schemas.StaffOut,
    filters=schemas.StaffFilters,
    order_by=lambda: (Staff.name, Staff.id),
    references={"branch_id": Branch},
    # The agent finds staff by spoken name: two people of one name could not be told apart.
    unique=(Unique(("name",), "A staff member with this name exists."),),
    before_delete=_no_upcoming_appointments("staff_id", "staff member"),
)
STAFF_SERVICES = Resource(
    path="/staff-services",
    label="staff service",
    model=StaffService,
    create=schemas.StaffServiceCreate,
    out=schemas.StaffServiceOut,
    filters=schemas.StaffServiceFilters,
    order_by=lambda: (StaffService.created_at.desc(), StaffService.id),
    references={"staff_id": Staff, "service_id": Service},
    unique=(Unique(("staff_id", "service_id"), "This staff member already has this service."),),
)
WORKING_HOURS = Resource(
    path="/working-hours",
    label="working-hours interval",
    model=WorkingHours,
    create=schemas.WorkingHoursCreate,
    out=schemas.WorkingHoursOut,
    filters=schemas.WorkingHoursFilters,
    order_by=lambda: (
        WorkingHours.staff_id,
        WorkingHours.weekday,
        WorkingHours.start_time,
        WorkingHours.id,
    ),
    references={"staff_id": Staff},
    rules=(_working_hours_do_not_overlap, staff_hours_within_opening_hours),
)
TIME_OFF = Resource(
    path="/time-off",
    label="time off",
    model=TimeOff,
    create=schemas.TimeOffCreate,
    out=schemas.TimeOffOut,
    filters=schemas.TimeOffFilters,
    order_by=lambda: (TimeOff.starts_at.desc(), TimeOff.id),
    references={"staff_id": Staff},
    presenter=_time_off_in_branch_time,
)
PHONE_NUMBERS = Resource(
    path="/phone-numbers",
    label="phone number",
    model=PhoneNumber,
    create=schemas.PhoneNumberCreate,
    out=schemas.PhoneNumberOut,
    filters=schemas.PhoneNumberFilters,
    order_by=lambda: (PhoneNumber.number, PhoneNumber.id),
    references={"branch_id": Branch},
    # Numbers route calls to a tenant, so they are unique across all companies.
    unique=(Unique(("number",), "This phone number is already assigned.", across_companies=True),),
    rules=(_claim_agent,),
    # Numbers and agents route calls to a company: only the platform attaches them.
    platform_only=("number", "retell_agent_id"),
)

RESOURCES = (
    BRANCHES,
    SERVICES,
    STAFF,
    STAFF_SERVICES,
    WORKING_HOURS,
    TIME_OFF,
    PHONE_NUMBERS,
)
