"""Cancelling and rescheduling: ask the policy service, then apply atomically.

Reschedule is one move: the new time is fenced (staff lock + overlap check excluding the
appointment itself) and the old one freed by the same UPDATE, or nothing changes. For a company
with Cal.com the new start must also be one Cal.com lists, asked as book() asks (before the
lock, local calendar alone when Cal.com cannot say in time) but for moving the appointment's
own Cal.com booking, which Cal.com would otherwise count as busy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.appointments import modifications, refusal_notices
from services.booking.appointments.context import BookingContext, load_context
from services.booking.appointments.policy_client import PolicyClient, PolicyDecision
from services.booking.appointments.slots import (
    alternatives_for,
    blocked_range,
    calcom_allows,
    check_schedule,
    slot_taken,
)
from shared.appointments.events import stage_appointment_events, stage_appointment_notice
from shared.appointments.fence import conflicts, lock_staff
from shared.appointments.writes import compare_and_set
from shared.db.types import utcnow
from shared.errors import AppError, Conflict, FeeRequired, PolicyViolation
from shared.models import LIVE_STATUSES, Appointment

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChangeResult:
    appointment: Appointment
    decision: PolicyDecision
    old_start: datetime
    context: BookingContext | None = None


def _refuse(decision: PolicyDecision, appointment: Appointment) -> AppError:
    if decision.reason == "not_modifiable" and appointment.status in LIVE_STATUSES:
        # We read it live, the policy service (after our read) no longer did: a concurrent
        # change won. The same answer as losing the compare-and-set, not a policy refusal.
        return Conflict("The appointment was changed at the same time; please try again.")
    return PolicyViolation(
        f"Not allowed: {decision.reason}.",
        reason=decision.reason,
        deadline=decision.deadline,
        quota={
            "used": decision.quota_used,
            "limit": decision.quota_limit,
            "window_days": decision.window_days,
        },
    )


def _require_fee_accepted(decision: PolicyDecision, accept_fee: bool) -> None:
    """A change that costs a fee waits for the caller's acceptance (REST `accept_fee`)."""
    if decision.fee > 0 and not accept_fee:
        raise FeeRequired(
            f"This change costs a fee of {decision.fee:.2f} {decision.currency}; "
            "send accept_fee: true to accept it.",
            fee=f"{decision.fee:.2f}",
            currency=decision.currency,
            reason=decision.reason,
            deadline=decision.deadline,
        )


@contextmanager
def _quota_notice(appointment: Appointment, kind: str) -> Iterator[None]:
    """A quota refusal of this change carries the customer's notice (staged after the
    rollback by the route: services/booking/appointments/refusal_notices.py)."""
    try:
        yield
    except PolicyViolation as error:
        try:
            refusal_notices.attach(error, appointment, kind)
        except Exception:  # the notice is a courtesy: never let it replace the refusal
            log.exception("quota notice not prepared")
        raise


async def _apply_update(
    session: AsyncSession, appointment: Appointment, values: dict[str, object]
) -> None:
    """Compare-and-set on the version: a concurrent change of the same appointment loses."""
    if not await compare_and_set(session, appointment, values, live_only=True):
        raise Conflict("The appointment was changed at the same time; please try again.")


async def _apply(
    session: AsyncSession,
    appointment: Appointment,
    decision: PolicyDecision,
    *,
    kind: str,
    actor: str,
    values: dict[str, object],
    new_start: datetime | None,
    reason: str | None,
    event: str,
    event_extra: dict[str, str],
    now: datetime,
) -> datetime:
    """The common tail of a change: the quota rechecked under the customer lock, the
    compare-and-set update, the audit row with its counter, the outbox events. Returns the
    old start."""
    await modifications.lock_customer(session, appointment.customer_id)
    await modifications.enforce_quota(
        session,
        customer_id=appointment.customer_id,
        modification_type=kind,
        limit=decision.quota_limit,
        window_days=decision.window_days,
        now=now,
    )
    old_start = appointment.starts_at
    await _apply_update(session, appointment, values)
    await modifications.record(
        session,
        appointment,
        modification_type=kind,
        actor=actor,
        old_starts_at=old_start,
        new_starts_at=new_start,
        fee=decision.fee,
        currency=decision.currency,
        within_policy=decision.reason == "ok",
        reason=reason,
        now=now,
    )
    stage_appointment_events(
        session, appointment, event, {**event_extra, "fee": f"{decision.fee:.2f}"}
    )
    return old_start


async def cancel(
    session: AsyncSession,
    policy: PolicyClient,
    appointment: Appointment,
    *,
    actor: str,
    reason: str | None,
    now: datetime | None = None,
    accept_fee: bool = True,
) -> ChangeResult:
    now = now or utcnow()
    with _quota_notice(appointment, "cancel"):
        decision = await policy.evaluate(appointment.company_id, appointment.id, "cancel", at=now)
        if not decision.allowed:
            raise _refuse(decision, appointment)
        _require_fee_accepted(decision, accept_fee)
        old_start = await _apply(
            session,
            appointment,
            decision,
            kind="cancel",
            actor=actor,
            values={"status": "cancelled", "cancelled_at": now, "cancellation_reason": reason},
            new_start=None,
            reason=reason,
            event="booking_cancelled",
            event_extra={},
            now=now,
        )
    if decision.fee > 0:  # the customer hears of the fee in a notice of its own
        fee = {"fee": f"{decision.fee:.2f}", "currency": decision.currency}
        if decision.reason == "late_fee" and decision.deadline:  # the deadline it missed
            fee["deadline"] = decision.deadline
        stage_appointment_notice(session, appointment, "cancellation_fee_charged", fee)
    return ChangeResult(appointment, decision, old_start)


async def reschedule(
    session: AsyncSession,
    policy: PolicyClient,
    appointment: Appointment,
    new_start: datetime,
    *,
    actor: str,
    now: datetime | None = None,
    accept_fee: bool = True,
) -> ChangeResult:
    now = now or utcnow()
    with _quota_notice(appointment, "reschedule"):
        return await _reschedule(
            session, policy, appointment, new_start, actor=actor, now=now, accept_fee=accept_fee
        )


async def _reschedule(
    session: AsyncSession,
    policy: PolicyClient,
    appointment: Appointment,
    new_start: datetime,
    *,
    actor: str,
    now: datetime,
    accept_fee: bool,
) -> ChangeResult:
    decision = await policy.evaluate(appointment.company_id, appointment.id, "reschedule", at=now)
    if not decision.allowed:
        raise _refuse(decision, appointment)
    _require_fee_accepted(decision, accept_fee)
    ctx = await load_context(
        session, service_id=appointment.service_id, staff_id=appointment.staff_id, phone=None
    )
    check_schedule(ctx, new_start, now)
    end, blocked_from, blocked_until = blocked_range(ctx, new_start)
    # Asked before the lock (Cal.com may take up to 1.5 s). None until the first sync: Cal.com
    # does not know the booking yet, so it blocks nothing there.
    uid = appointment.calcom_booking_uid
    refused_by_calcom = not await calcom_allows(session, ctx, new_start, reschedule_uid=uid)
    await lock_staff(session, [appointment.staff_id])
    clashes = await conflicts(
        session, appointment.staff_id, blocked_from, blocked_until, exclude_ids=[appointment.id]
    )
    if clashes or refused_by_calcom:
        alternatives = await alternatives_for(
            session, ctx, new_start, now, any_staff=False, moving=appointment.id, reschedule_uid=uid
        )
        raise slot_taken(alternatives, ctx.timezone)
    values: dict[str, object] = {
        "starts_at": new_start,
        "ends_at": end,
        "blocked_from": blocked_from,
        "blocked_until": blocked_until,
    }
    if appointment.sync_status != "local_only":
        values["sync_status"] = "pending"
    old_start = await _apply(
        session,
        appointment,
        decision,
        kind="reschedule",
        actor=actor,
        values=values,
        new_start=new_start,
        reason=None,
        event="booking_rescheduled",
        event_extra={"old_start": appointment.starts_at.isoformat()},
        now=now,
    )
    return ChangeResult(appointment, decision, old_start, ctx)
