"""Evaluation's thin shell: load what the pure core needs, call it, shape the answer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.policy import store
from services.policy.evaluation import (
    Decision,
    Policy,
    as_utc,
    can_cancel,
    can_reschedule,
    deadline_local_iso,
)
from services.policy.schemas import EvaluateIn
from shared.db.types import utcnow
from shared.errors import InvalidInput, NotFound
from shared.hierarchy import Chain, ConfigCache, resolve_chain
from shared.models import Appointment, Branch, Company, Customer, Service

POLICY_TYPE: Final = {"cancel": "cancellation", "reschedule": "reschedule"}
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


async def load_appointment(session: AsyncSession, company_id: str, appointment_id: str) -> Subject:
    """A booked appointment of the company with its branch's zone; 404 otherwise."""
    a = Appointment
    row = (
        await session.execute(
            sa.select(
                a.branch_id,
                a.service_id,
                a.staff_id,
                a.starts_at,
                a.status,
                a.price,
                a.currency,
                a.customer_id,
                Branch.timezone,
            )
            .join(Branch, Branch.id == a.branch_id)
            .where(a.id == appointment_id, a.company_id == company_id)
        )
    ).first()
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
    )


async def load_hypothetical(session: AsyncSession, company_id: str, body: EvaluateIn) -> Subject:
    """A confirmed appointment that would start at `body.start` (what-if form)."""
    if body.service_id is None:
        raise InvalidInput("Give appointment_id, or service_id and start.", field="service_id")
    if body.start is None:
        raise InvalidInput("The what-if form needs start.", field="start")
    chain = await resolve_chain(
        session,
        company_id,
        branch_id=body.branch_id,
        service_id=body.service_id,
        staff_id=body.staff_id,
    )
    timezone = (
        sa.select(Branch.timezone).where(Branch.id == chain.branch_id).scalar_subquery()
        if chain.branch_id
        else sa.select(Company.timezone).where(Company.id == company_id).scalar_subquery()
    )
    customer = (
        sa.select(Customer.id)
        .where(Customer.company_id == company_id, Customer.phone == body.customer_phone)
        .scalar_subquery()
        if body.customer_phone
        else sa.null()
    )
    row = (
        await session.execute(
            sa.select(Service.price, Service.currency, timezone, customer).where(
                Service.id == body.service_id, Service.company_id == company_id
            )
        )
    ).one()
    price, currency, zone, customer_id = row
    return Subject(
        chain=chain,
        start=body.start,
        status="confirmed",
        price=price,
        currency=currency,
        timezone=zone,
        customer_id=customer_id,
        appointment_id=None,
    )


async def load_subject(session: AsyncSession, company_id: str, body: EvaluateIn) -> Subject:
    if body.appointment_id is None:
        return await load_hypothetical(session, company_id, body)
    for name in _WHAT_IF_FIELDS:
        if getattr(body, name) is not None:
            raise InvalidInput(
                f"{name} belongs to the what-if form; do not combine it with appointment_id",
                field=name,
            )
    return await load_appointment(session, company_id, body.appointment_id)


async def evaluate(
    session: AsyncSession, cache: ConfigCache | None, company_id: str, body: EvaluateIn
) -> dict[str, Any]:
    """The decision for `body.action` on the subject at `body.at` (default now), as JSON."""
    at = body.at or utcnow()
    subject = await load_subject(session, company_id, body)
    policy_type = POLICY_TYPE[body.action]
    effective = await store.effective_config(session, cache, subject.chain, policy_type)
    policy = Policy.from_config(policy_type, effective["config"])
    changes: list[datetime] = []
    if subject.customer_id is not None:
        since = as_utc(at, "at") - timedelta(days=policy.window_days)
        changes = await store.recent_modifications(session, subject.customer_id, body.action, since)
    common: dict[str, Any] = {
        "start": subject.start,
        "status": subject.status,
        "at": at,
        "config": policy,
        "price": subject.price,
        "currency": subject.currency,
        "recent_changes": changes,
    }
    decision: Decision
    if body.action == "cancel":
        decision = can_cancel(**common)
    else:
        moved = 0
        if subject.appointment_id is not None:
            moved = await store.reschedule_count(session, subject.appointment_id)
        decision = can_reschedule(**common, reschedule_count=moved)
    return {
        "allowed": decision.allowed,
        "reason": decision.reason.value,
        "fee": f"{decision.fee:.2f}",
        "currency": decision.currency,
        "deadline": deadline_local_iso(decision.deadline, subject.timezone),
        "hours_before_appointment": f"{decision.hours_before_appointment:.2f}",
        "quota": {
            "used": decision.quota.used,
            "limit": decision.quota.limit,
            "window_days": decision.quota.window_days,
        },
        "action": body.action,
        "policy_type": policy_type,
        "appointment_id": subject.appointment_id,
    }
