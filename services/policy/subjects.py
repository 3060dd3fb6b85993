"""The subject of an evaluation: a booked appointment, or a hypothetical one (what-if form)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final

from services.policy import queries
from services.policy.schemas import EvaluateIn
from shared.errors import InvalidInput, NotFound
from shared.hierarchy.chain import Chain
from shared.hierarchy.queries import resolve_chain
from shared.hierarchy.reads import Reads

_WHAT_IF_FIELDS: Final = ("service_id", "start", "staff_id", "branch_id", "customer_phone")


@dataclass(frozen=True)
class Subject:
    """The appointment (real or hypothetical) a decision is about."""

    chain: Chain
    start: datetime
    status: str
    price: Decimal
    currency: str
    timezone: str
    customer_id: str | None
    appointment_id: str | None
    reschedule_count: int = 0  # the appointment's own earlier moves (when asked for)


async def load_subject(reads: Reads, company_id: str, body: EvaluateIn) -> Subject:
    """The appointment `body` names, or the what-if form's; 404/422 for what does not fit."""
    if body.appointment_id is None:
        return await load_hypothetical(reads, company_id, body)
    for name in _WHAT_IF_FIELDS:
        if getattr(body, name) is not None:
            raise InvalidInput(
                f"{name} belongs to the what-if form; do not combine it with appointment_id",
                field=name,
            )
    return await load_appointment(
        reads, company_id, body.appointment_id, count_reschedules=body.action == "reschedule"
    )


async def load_appointment(
    reads: Reads, company_id: str, appointment_id: str, *, count_reschedules: bool = False
) -> Subject:
    """A booked appointment of the company with its branch's zone (and, with
    `count_reschedules`, how often it has been moved); 404 otherwise."""
    row = await queries.appointment(
        reads, company_id, appointment_id, count_reschedules=count_reschedules
    )
    if row is None:
        raise NotFound("No such appointment.", field="appointment_id")
    return Subject(
        chain=Chain(company_id, row.branch_id, row.service_id, row.staff_id),
        start=row.starts_at,
        status=row.status,
        # The price as booked: a later change of the service's price does not change the fee.
        price=row.price,
        currency=row.currency,
        timezone=row.timezone,
        customer_id=row.customer_id,
        appointment_id=appointment_id,
        reschedule_count=int(row.moved or 0) if count_reschedules else 0,
    )


async def load_hypothetical(reads: Reads, company_id: str, body: EvaluateIn) -> Subject:
    """A confirmed appointment that would start at `body.start` (what-if form)."""
    if body.service_id is None:
        raise InvalidInput("Give appointment_id, or service_id and start.", field="service_id")
    if body.start is None:
        raise InvalidInput("The what-if form needs start.", field="start")
    chain = await resolve_chain(
        reads,
        company_id,
        branch_id=body.branch_id,
        service_id=body.service_id,
        staff_id=body.staff_id,
    )
    row = await queries.hypothetical(reads, chain, body.service_id, body.customer_phone)
    if row is None:  # resolve_chain has found the service: only a concurrent delete
        raise NotFound("No such service.", field="service_id")
    return Subject(
        chain=chain,
        start=body.start,
        status="confirmed",
        price=row.price,
        currency=row.currency,
        timezone=row.timezone,
        customer_id=row.customer_id,
        appointment_id=None,
    )
