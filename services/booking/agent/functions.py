"""The six functions the Retell agent calls during a phone call.

Each takes the tenant-bound session and an `AgentCall`, and returns the answer body (HTTP 200;
the outcome is in `status`). A refusal raises `Refusal`, whose body is the answer; the request
transaction is then rolled back, so a refused call writes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.agent import speech
from services.booking.agent.identity import AgentCall as AgentCall
from services.booking.agent.identity import listed_appointments, own_appointment
from services.booking.agent.inputs import (
    Refusal,
    invalid,
    local_instant,
    parse_date,
    parse_time,
    resolve_branch,
    resolve_service,
    resolve_staff,
    text_arg,
)
from services.booking.appointments import changes
from services.booking.appointments import metrics as booking_metrics
from services.booking.appointments.booking import BookingRequest, book, free_slots, resolve_branches
from services.booking.scheduling.availability import Slot, nearest_alternatives
from services.booking.scheduling.rules import rules_for
from shared.appointments.callbacks import create_callback
from shared.db.tenancy import current_company
from shared.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PolicyViolation,
    ServiceUnavailable,
    SlotTaken,
)
from shared.models import LIVE_STATUSES, Branch, Company, Service, Staff

MAX_SLOTS = 5


async def _company(session: AsyncSession) -> Company:
    company: Company | None = await current_company(session)
    assert company is not None
    return company


async def _staff_names(session: AsyncSession, ids: set[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = await session.execute(sa.select(Staff.id, Staff.name).where(Staff.id.in_(ids)))
    return dict(rows.all())


def _slot_json(slot: Slot, tz: str, names: dict[str, str]) -> dict[str, str]:
    zone = ZoneInfo(tz)
    return {
        "start": slot.start.astimezone(zone).isoformat(),
        "end": slot.end.astimezone(zone).isoformat(),
        "staff": names.get(slot.staff_id, ""),
        "staff_id": slot.staff_id,
    }


async def check_availability(session: AsyncSession, call: AgentCall) -> dict[str, Any]:
    args = call.args
    service = await resolve_service(session, text_arg(args, "service"))
    branch = await resolve_branch(session, text_arg(args, "branch"), call.branch_id)
    staff = await resolve_staff(session, text_arg(args, "staff"), branch)
    day = parse_date(text_arg(args, "date", 20))
    wanted = text_arg(args, "time", 20)
    company = await _company(session)
    branches = [branch] if branch is not None else await _all_branches(session, service)
    found: list[tuple[Slot, str]] = []
    for b in branches:
        slots = await free_slots(
            session,
            service=service,
            branch=b,
            rules=rules_for(company, b),
            first_date=day,
            days=7 if wanted else 1,
            now=call.now,
            staff_id=staff.id if staff else None,
        )
        found.extend((slot, b.timezone) for slot in slots)
    found.sort(key=lambda item: item[0].start)
    tz = branches[0].timezone if branches else company.timezone
    if wanted is not None:
        start = local_instant(day, parse_time(wanted), tz)
        exact = [item for item in found if item[0].start == start]
        if exact:
            names = await _staff_names(session, {exact[0][0].staff_id})
            slot = exact[0][0]
            return {
                "status": "available",
                "slots": [_slot_json(slot, tz, names)],
                "message": speech.slots_available(
                    service.name, [(slot.start, names.get(slot.staff_id))], tz
                ),
            }
        nearest = nearest_alternatives([s for s, _ in found], start, tz)
        names = await _staff_names(session, {s.staff_id for s in nearest})
        return {
            "status": "unavailable",
            "slots": [_slot_json(s, tz, names) for s in nearest],
            "message": speech.slot_taken_with_alternatives(
                start, [(s.start, names.get(s.staff_id)) for s in nearest], tz
            ),
        }
    shown = [slot for slot, _ in found[:MAX_SLOTS]]
    names = await _staff_names(session, {s.staff_id for s in shown})
    if not shown:
        return {"status": "unavailable", "slots": [], "message": speech.no_slots(service.name, day)}
    return {
        "status": "available",
        "slots": [_slot_json(s, tz, names) for s in shown],
        "message": speech.slots_available(
            service.name, [(s.start, names.get(s.staff_id)) for s in shown], tz
        ),
    }


async def _all_branches(session: AsyncSession, service: Service) -> list[Branch]:
    return await resolve_branches(session, service, None)


async def _booking_request(
    session: AsyncSession, call: AgentCall
) -> tuple[BookingRequest, Service, str]:
    """The agent's arguments as a request, the service and the local zone; else a Refusal."""
    args = call.args
    name = text_arg(args, "customer_name")
    service = await resolve_service(session, text_arg(args, "service"))
    branch = await resolve_branch(session, text_arg(args, "branch"), call.branch_id)
    staff = await resolve_staff(session, text_arg(args, "staff"), branch)
    day = parse_date(text_arg(args, "date", 20))
    at = parse_time(text_arg(args, "time", 20))
    if name is None:
        raise invalid("missing_customer_name")
    phone = call.phone_for_booking()
    if phone is None:
        raise invalid("missing_customer_phone")
    tz = branch.timezone if branch is not None else (await _company(session)).timezone
    request = BookingRequest(
        service_id=service.id,
        staff_id=staff.id if staff else None,
        branch_id=branch.id if branch else None,
        start=local_instant(day, at, tz),
        customer_name=name,
        customer_phone=phone,
        customer_email=text_arg(args, "customer_email", 255),
        notes=text_arg(args, "notes", 2000),
        source="agent",
        call_id=call.call_id,
        update_customer=call.speaks_for(phone),
    )
    return request, service, tz


async def book_appointment(session: AsyncSession, call: AgentCall) -> dict[str, Any]:
    try:
        request, service, tz = await _booking_request(session, call)
    except Refusal:  # refused before `book`, which counts every attempt it sees
        booking_metrics.count("agent", "invalid")
        raise
    try:
        result = await book(session, request, now=call.now)
    except SlotTaken as taken:
        raise await _slot_taken(session, request.start, taken, tz) from None
    appointment = result.appointment
    tz = result.context.timezone
    return {
        "status": "booked",
        "appointment_id": appointment.id,
        "reference": appointment.reference,
        "start": appointment.starts_at.astimezone(ZoneInfo(tz)).isoformat(),
        "end": appointment.ends_at.astimezone(ZoneInfo(tz)).isoformat(),
        "staff": result.context.staff.name,
        "message": speech.booked(
            service.name,
            appointment.starts_at,
            result.context.staff.name,
            tz,
            reference=appointment.reference,
        ),
    }


async def _slot_taken(session: AsyncSession, start: datetime, taken: SlotTaken, tz: str) -> Refusal:
    slots: list[Slot] = list(taken.slots)
    names = await _staff_names(session, {s.staff_id for s in slots})
    return Refusal(
        "slot_taken",
        speech.slot_taken_with_alternatives(
            start, [(s.start, names.get(s.staff_id)) for s in slots], tz
        ),
        {"alternatives": [_slot_json(s, tz, names) for s in slots]},
    )


def _not_allowed(error: PolicyViolation, action: speech.Action, tz: str) -> Refusal:
    reason = str(error.extra.get("reason", "not_modifiable"))
    deadline_raw = error.extra.get("deadline")
    deadline = datetime.fromisoformat(deadline_raw) if isinstance(deadline_raw, str) else None
    return Refusal(
        "not_allowed",
        speech.cancel_not_allowed(reason, deadline, tz_name=tz, action=action),
        {"reason": reason},
    )


async def cancel_appointment(session: AsyncSession, call: AgentCall) -> dict[str, Any]:
    appointment, tz = await own_appointment(session, call)
    try:
        result = await changes.cancel(
            session,
            call.policy,
            appointment,
            actor="agent",
            reason=text_arg(call.args, "reason", 500),
            now=call.now,
        )
    except PolicyViolation as error:
        raise _not_allowed(error, "cancel", tz) from None
    fee = result.decision.fee
    return {
        "status": "cancelled",
        "appointment_id": appointment.id,
        "fee": f"{fee:.2f}",
        "currency": result.decision.currency,
        "message": speech.cancelled(result.old_start, tz, fee, currency=result.decision.currency),
    }


async def reschedule_appointment(session: AsyncSession, call: AgentCall) -> dict[str, Any]:
    appointment, tz = await own_appointment(session, call)
    new_day = parse_date(text_arg(call.args, "new_date", 20))
    new_time = parse_time(text_arg(call.args, "new_time", 20))
    new_start = local_instant(new_day, new_time, tz)
    try:
        result = await changes.reschedule(
            session, call.policy, appointment, new_start, actor="agent", now=call.now
        )
    except PolicyViolation as error:
        raise _not_allowed(error, "reschedule", tz) from None
    except SlotTaken as taken:
        raise await _slot_taken(session, new_start, taken, tz) from None
    fee = result.decision.fee
    return {
        "status": "rescheduled",
        "appointment_id": appointment.id,
        "start": new_start.astimezone(ZoneInfo(tz)).isoformat(),
        "fee": f"{fee:.2f}",
        "currency": result.decision.currency,
        "message": speech.rescheduled(
            result.old_start, new_start, tz, fee, currency=result.decision.currency
        ),
    }


async def list_appointments(session: AsyncSession, call: AgentCall) -> dict[str, Any]:
    rows = await listed_appointments(session, call)
    items = [
        {
            "appointment_id": row.appointment.id,
            "reference": row.appointment.reference,
            "service": row.service,
            "start": row.appointment.starts_at.astimezone(ZoneInfo(row.timezone)).isoformat(),
            "staff": row.staff,
            "status": row.appointment.status,
        }
        for row in rows
    ]
    live = [row for row in rows if row.appointment.status in LIVE_STATUSES]
    message = (
        speech.appointments_list(
            [(row.appointment.starts_at, row.service, row.staff) for row in live],
            live[0].timezone,
        )
        if live
        else speech.no_appointments_found()
    )
    return {"status": "ok", "appointments": items, "message": message}


async def request_callback(session: AsyncSession, call: AgentCall) -> dict[str, Any]:
    reason = text_arg(call.args, "reason", 1000) or "Rückruf gewünscht"
    phone = call.phone_for_booking()
    if phone is None:
        raise invalid("missing_customer_phone")
    preferred = text_arg(call.args, "preferred_time", 200)
    callback = await create_callback(
        session,
        company_id=call.company_id,
        phone_number=phone,
        reason=reason,
        customer_name=text_arg(call.args, "customer_name"),
        branch_id=call.branch_id,
        call_id=call.call_id,
        preferred_time=preferred,
        now=call.now,
    )
    return {
        "status": "created",
        "callback_id": callback.id,
        "message": speech.callback_created(preferred),
    }


Handler = Callable[[AsyncSession, AgentCall], Awaitable[dict[str, Any]]]
FUNCTIONS: dict[str, Handler] = {
    "check_availability": check_availability,
    "book_appointment": book_appointment,
    "cancel_appointment": cancel_appointment,
    "reschedule_appointment": reschedule_appointment,
    "list_appointments": list_appointments,
    "request_callback": request_callback,
}
MUTATING = {"book_appointment", "cancel_appointment", "reschedule_appointment", "request_callback"}


def refusal_for(error: Exception, function: str) -> Refusal:
    """How a domain error is said to the caller (the transaction is rolled back)."""
    if isinstance(error, Refusal):
        return error
    if isinstance(error, NotFound):
        return Refusal("not_found", speech.appointment_not_found())
    if isinstance(error, ServiceUnavailable | Conflict):
        # Conflict: a concurrent change of the same appointment won (version compare-and-set);
        # still a well-formed call, so an answer the agent can read out, never a bare 409.
        return Refusal("needs_callback", speech.service_unavailable())
    if isinstance(error, InvalidInput):
        field = error.extra.get("field")
        reason = error.extra.get("reason")
        if field == "start":
            ask: speech.AskField = {
                "past": "date_in_past",
                "notice": "date_in_past",
                "window": "beyond_booking_window",
            }.get(str(reason), "outside_opening_hours")  # type: ignore[assignment]
            return invalid(ask)
        if field == "staff_id":
            return invalid("unknown_staff")
        if field == "branch_id":
            return invalid("unknown_branch")
        if field == "service_id":
            return invalid("unknown_service")
        if "phone" in str(field):
            return invalid("missing_customer_phone")
        if "name" in str(field):
            return invalid("missing_customer_name")
        return Refusal("invalid_request", speech.needs_callback())
    raise error
