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
from shared.db.raw_sql import RawPool
from shared.db.scoped import execute, scoped, tenant_value
from shared.db.tenancy import PER_CALL
from shared.db.types import utcnow
from shared.errors import InvalidInput, NotFound
from shared.hierarchy import Chain, ConfigCache, resolve_chain
from shared.models import Appointment, Branch, Company, Customer, Service
from shared.web.auth import KeyLimit

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
    reschedule_count: int = 0  # the appointment's own earlier moves (when asked for)


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
        columns.append(store.RESCHEDULES_OF_APPOINTMENT.label("moved"))
    return scoped(
        sa.select(*columns)
        .join(Branch, Branch.id == a.branch_id)
        .where(a.id == sa.bindparam("appointment_id")),
        PER_CALL,
    )


# Built once, scoped per call (shared.db.scoped): with and without the reschedule count.
_APPOINTMENT: Final = {flag: _appointment_statement(flag) for flag in (False, True)}


async def load_appointment(
    session: AsyncSession,
    company_id: str,
    appointment_id: str,
    *,
    count_reschedules: bool = False,
) -> Subject:
    """A booked appointment of the company with its branch's zone; 404 otherwise.

    One statement: the appointment, its branch's zone and, with `count_reschedules`, how often
    it has been moved. Core on the session's connection (no ORM machinery on the hot path).
    """
    statement = _APPOINTMENT[count_reschedules]
    params = {"appointment_id": appointment_id}
    row = (await execute(session, statement, params, company_id=company_id)).first()
    return _appointment_subject(row, company_id, appointment_id, count_reschedules)


def _appointment_subject(
    row: Any, company_id: str, appointment_id: str, count_reschedules: bool
) -> Subject:
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
        else sa.select(Company.timezone).scalar_subquery()
    )
    customer = (
        sa.select(Customer.id).where(Customer.phone == body.customer_phone).scalar_subquery()
        if body.customer_phone
        else sa.null()
    )
    statement = sa.select(Service.price, Service.currency, timezone, customer).where(
        Service.id == body.service_id
    )
    tenant = tenant_value(session, company_id)
    row = (await execute(session, scoped(statement, tenant))).one()
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
    return await load_appointment(
        session, company_id, body.appointment_id, count_reschedules=body.action == "reschedule"
    )


async def evaluate(
    session: AsyncSession, cache: ConfigCache | None, company_id: str, body: EvaluateIn
) -> dict[str, Any]:
    """The decision for `body.action` on the subject at `body.at` (default now), as JSON.

    Warm, this costs two statements (the subject; the customer's recent changes) and one
    Redis round trip (the effective config's version and entry); the parsed Policy is
    memoized per company version.
    """
    at = body.at or utcnow()
    subject = await load_subject(session, company_id, body)
    policy_type = POLICY_TYPE[body.action]
    policy = await store.effective_policy(session, cache, subject.chain, policy_type)
    changes: list[datetime] = []
    if subject.customer_id is not None:
        since = as_utc(at, "at") - timedelta(days=policy.window_days)
        changes = await store.recent_modifications(
            session, company_id, subject.customer_id, body.action, since
        )
    return answer(body, at, subject, policy, changes)


def answers_warm(body: EvaluateIn) -> bool:
    """Can `evaluate_warm` take this request (an appointment by id, not the what-if form)?"""
    return body.appointment_id is not None and not any(
        getattr(body, name) is not None for name in _WHAT_IF_FIELDS
    )


async def evaluate_warm(
    reads: RawPool, cache: ConfigCache, company_id: str, body: EvaluateIn, limit: KeyLimit
) -> dict[str, Any] | None:
    """`evaluate` of an appointment by id (`answers_warm`) through autocommit raw reads, the
    caller's rate-limit hit sharing the round trip of the config cache read (the lean
    route's). The same statements, cache entry, memo and decision as `evaluate`. Counts the
    hit exactly once; None when the effective config is not cached, and the caller then runs
    `evaluate` in a session (this only read: nothing has happened twice)."""
    assert body.appointment_id is not None
    at = body.at or utcnow()
    moves = body.action == "reschedule"
    params = {"appointment_id": body.appointment_id}
    row = await reads.first(_APPOINTMENT[moves], params, tenant=company_id)
    if row is None:
        await limit.hit()
    subject = _appointment_subject(row, company_id, body.appointment_id, moves)
    policy_type = POLICY_TYPE[body.action]
    reply = await limit.hit_with(store.policy_read(cache, subject.chain, policy_type))
    policy = store.cached_policy(cache, subject.chain, policy_type, reply)
    if policy is None:
        return None
    changes: list[datetime] = []
    if subject.customer_id is not None:
        since = as_utc(at, "at") - timedelta(days=policy.window_days)
        changes = await reads.scalars(
            store.RECENT_MODIFICATIONS,
            store.recent_params(subject.customer_id, body.action, since),
            tenant=company_id,
        )
    return answer(body, at, subject, policy, changes)


def answer(
    body: EvaluateIn, at: datetime, subject: Subject, policy: Policy, changes: list[datetime]
) -> dict[str, Any]:
    """The pure core's decision on `subject`, shaped as the API answers it."""
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
        decision = can_reschedule(**common, reschedule_count=subject.reschedule_count)
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
        "policy_type": POLICY_TYPE[body.action],
        "appointment_id": subject.appointment_id,
    }
