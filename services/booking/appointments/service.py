"""The booking REST API's use cases: availability, book, read, list, cancel, reschedule (each
in the request's one transaction), answering the API's typed bodies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.appointments import changes, idempotency, queries
from services.booking.appointments.booking import BookingRequest, book
from services.booking.appointments.context import load_offer
from services.booking.appointments.policy_client import PolicyClient
from services.booking.appointments.schemas import (
    AppointmentCreate,
    AppointmentList,
    AppointmentOut,
    AvailabilityOut,
    CancelOut,
    Names,
    RescheduleOut,
    SlotOut,
)
from services.booking.appointments.slots import explained_free_slots
from services.booking.scheduling.reasons import EmptyReason, combined
from services.booking.scheduling.rules import rules_for
from shared.db.types import utcnow
from shared.web.paging import MAX_LIMIT, decode_cursor, encode_cursor


async def availability(
    session: AsyncSession,
    *,
    service_id: str,
    first_date: date,
    days: int,
    branch_id: str | None = None,
    staff_id: str | None = None,
    now: datetime | None = None,
) -> AvailabilityOut:
    """Free slots of a service in its branches, earliest first; none -> why (see `reason`)."""
    now = now or utcnow()
    offer = await load_offer(session, service_id=service_id, branch_id=branch_id)
    found: list[tuple[datetime, SlotOut]] = []
    reasons: list[EmptyReason] = []
    for branch in offer.branches:
        result = await explained_free_slots(
            session,
            service=offer.service,
            branch=branch,
            rules=rules_for(offer.company, branch),
            first_date=first_date,
            days=days,
            now=now,
            staff_id=staff_id,
        )
        found.extend(
            zip(
                (s.start for s in result.slots),
                SlotOut.many(result.slots, branch.timezone),
                strict=True,
            )
        )
        if result.reason is not None:
            reasons.append(result.reason)
    found.sort(key=lambda item: item[0])
    slots = [item[1] for item in found]
    return AvailabilityOut(slots=slots, reason=None if slots else combined(reasons))


@dataclass(frozen=True)
class Created:
    """A booking's answer: 201 when new, 200 when the same booking was already there."""

    status: int
    appointment: AppointmentOut


async def create(
    session: AsyncSession,
    body: AppointmentCreate,
    idempotency_key: str | None,
    *,
    full_phone: bool = False,
) -> Created:
    """Book `body`; the same Idempotency-Key with the same body replays the first answer (the
    phone number as the first caller's scope saw it)."""
    fingerprint = idempotency.fingerprint(body.model_dump(mode="json"))
    if idempotency_key:
        earlier = await idempotency.claim(session, idempotency_key, fingerprint)
        if earlier is not None:
            raise idempotency.replay_or_refuse(earlier, fingerprint)
    req = BookingRequest(
        service_id=body.service_id,
        staff_id=body.staff_id,
        branch_id=body.branch_id,
        start=body.start,
        customer_name=body.customer.name,
        customer_phone=body.customer.phone,
        customer_email=body.customer.email,
        notes=body.notes,
        source="api",
    )
    result = await book(session, req)
    ctx = result.context
    names = Names(
        customer_name=ctx.customer_name or body.customer.name,
        customer_phone=body.customer.phone,
        service_name=ctx.service.name,
        staff_name=ctx.staff.name,
    )
    answer = Created(
        201 if result.created else 200,
        AppointmentOut.of(result.appointment, ctx.timezone, names, full_phone=full_phone),
    )
    if idempotency_key:
        await idempotency.complete(
            session, idempotency_key, answer.status, answer.appointment.model_dump()
        )
    return answer


async def read(
    session: AsyncSession, appointment_id: str, *, full_phone: bool = False
) -> AppointmentOut:
    found = await queries.appointment_with_names(session, appointment_id)
    return AppointmentOut.of(found.appointment, found.timezone, found.names, full_phone=full_phone)


async def listed(
    session: AsyncSession,
    *,
    phone: str | None = None,
    start_from: datetime | None = None,
    start_to: datetime | None = None,
    status: str | None = None,
    cursor: str | None = None,
    limit: int = 200,
    full_phone: bool = False,
) -> AppointmentList:
    """One page of the matching appointments, earliest first; `next_cursor` continues it."""
    after = decode_cursor(cursor) if cursor is not None else None
    limit = max(1, min(limit, MAX_LIMIT))
    rows = await queries.appointments_with_names(
        session,
        phone=phone,
        start_from=start_from,
        start_to=start_to,
        statuses=() if status is None else (status,),
        after=after,
        limit=limit + 1,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1].appointment if more else None
    return AppointmentList(
        items=[
            AppointmentOut.of(row.appointment, row.timezone, row.names, full_phone=full_phone)
            for row in rows
        ],
        next_cursor=None if last is None else encode_cursor(last.starts_at, last.id),
    )


async def cancel(
    session: AsyncSession,
    policy: PolicyClient,
    appointment_id: str,
    *,
    reason: str | None,
    accept_fee: bool,
) -> CancelOut:
    """Cancel under the effective policy; the fee (if any) is in the answer."""
    appointment, _tz = await queries.appointment_with_zone(session, appointment_id)
    result = await changes.cancel(
        session, policy, appointment, actor="api", reason=reason, accept_fee=accept_fee
    )
    return CancelOut(
        status="cancelled",
        appointment_id=appointment.id,
        fee=f"{result.decision.fee:.2f}",
        currency=result.decision.currency,
    )


async def reschedule(
    session: AsyncSession,
    policy: PolicyClient,
    appointment_id: str,
    start: datetime,
    *,
    accept_fee: bool,
    full_phone: bool = False,
) -> RescheduleOut:
    """Move to `start` in one atomic step (the old time is freed only if the new one holds)."""
    found = await queries.appointment_with_names(session, appointment_id)
    result = await changes.reschedule(
        session, policy, found.appointment, start, actor="api", accept_fee=accept_fee
    )
    moved = AppointmentOut.of(
        result.appointment, found.timezone, found.names, full_phone=full_phone
    )
    return RescheduleOut(**moved.model_dump(), fee=f"{result.decision.fee:.2f}")
