"""The six functions the Retell agent calls during a phone call.

Each takes the tenant-bound session and an `AgentCall`, and returns the answer body (HTTP 200;
the outcome is in `status`). A refusal raises `Refusal`, whose body is the answer; the request
transaction is then rolled back, so a refused call writes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.agent import speech
from services.booking.agent.identity import AgentCall as AgentCall
from services.booking.agent.identity import listed_appointments, own_appointment
from services.booking.agent.inputs import (
    Catalog,
    Named,
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
from services.booking.agent.queries import load_catalog, staff_names
from services.booking.agent.schemas import (
    Answer,
    AvailabilityAnswer,
    BookedAnswer,
    CallbackAnswer,
    CancelledAnswer,
    ListAnswer,
    ListedOut,
    RescheduledAnswer,
)
from services.booking.appointments import changes
from services.booking.appointments import metrics as booking_metrics
from services.booking.appointments.booking import BookingRequest, book
from services.booking.appointments.context import load_offer
from services.booking.appointments.schemas import NamedSlotOut
from services.booking.appointments.slots import free_slots
from services.booking.scheduling.availability import Slot, nearest_alternatives
from services.booking.scheduling.rules import rules_for
from shared.appointments.callbacks import create_callback
from shared.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PolicyViolation,
    ServiceUnavailable,
    SlotTaken,
)
from shared.local_time import local_iso
from shared.models import LIVE_STATUSES

MAX_SLOTS = 5


async def _staff_names(
    session: AsyncSession, ids: set[str], catalog: Catalog | None = None
) -> dict[str, str]:
    """The names of staff members, from the catalog when the call has read it."""
    if catalog is not None:
        return {s.id: s.name for s in catalog.staff}
    return await staff_names(session, ids)


def _slots(slots: list[Slot], tz: str, names: dict[str, str]) -> list[NamedSlotOut]:
    return [NamedSlotOut.of(slot, tz, names) for slot in slots]


async def check_availability(session: AsyncSession, call: AgentCall) -> AvailabilityAnswer:
    args = call.args
    catalog = await load_catalog(session)
    service = resolve_service(catalog, text_arg(args, "service"))
    branch = resolve_branch(catalog, text_arg(args, "branch"), call.branch_id)
    staff = resolve_staff(catalog, text_arg(args, "staff"), branch)
    day = parse_date(text_arg(args, "date", 20))
    wanted = text_arg(args, "time", 20)
    offer = await load_offer(
        session, service_id=service.id, branch_id=branch.id if branch else None, exact_branch=True
    )
    found: list[Slot] = []
    for b in offer.branches:
        found.extend(
            await free_slots(
                session,
                service=offer.service,
                branch=b,
                rules=rules_for(offer.company, b),
                first_date=day,
                days=7 if wanted else 1,
                now=call.now,
                staff_id=staff.id if staff else None,
            )
        )
    found.sort(key=lambda slot: slot.start)
    tz = offer.branches[0].timezone if offer.branches else offer.company.timezone
    if wanted is not None:
        start = local_instant(day, parse_time(wanted), tz)
        exact = [slot for slot in found if slot.start == start][:1]
        if exact:
            names = await _staff_names(session, {exact[0].staff_id}, catalog)
            return AvailabilityAnswer(
                status="available",
                slots=_slots(exact, tz, names),
                message=speech.slots_available(
                    service.name, [(exact[0].start, names.get(exact[0].staff_id))], tz
                ),
            )
        nearest = nearest_alternatives(found, start, tz)
        names = await _staff_names(session, {s.staff_id for s in nearest}, catalog)
        return AvailabilityAnswer(
            status="unavailable",
            slots=_slots(nearest, tz, names),
            message=speech.slot_taken_with_alternatives(
                start, [(s.start, names.get(s.staff_id)) for s in nearest], tz
            ),
        )
    shown = found[:MAX_SLOTS]
    names = await _staff_names(session, {s.staff_id for s in shown}, catalog)
    if not shown:
        return AvailabilityAnswer(
            status="unavailable", slots=[], message=speech.no_slots(service.name, day)
        )
    return AvailabilityAnswer(
        status="available",
        slots=_slots(shown, tz, names),
        message=speech.slots_available(
            service.name, [(s.start, names.get(s.staff_id)) for s in shown], tz
        ),
    )


async def _booking_request(
    session: AsyncSession, call: AgentCall
) -> tuple[BookingRequest, Named, str]:
    """The agent's arguments as a request, the service and the local zone; else a Refusal.
    The names are matched against one read of the company's catalog; `book` then loads the
    rows by id, once."""
    args = call.args
    name = text_arg(args, "customer_name")
    catalog = await load_catalog(session)
    service = resolve_service(catalog, text_arg(args, "service"))
    branch = resolve_branch(catalog, text_arg(args, "branch"), call.branch_id)
    staff = resolve_staff(catalog, text_arg(args, "staff"), branch)
    day = parse_date(text_arg(args, "date", 20))
    at = parse_time(text_arg(args, "time", 20))
    if name is None:
        raise invalid("missing_customer_name")
    phone = call.phone_for_booking()
    if phone is None:
        raise invalid("missing_customer_phone")
    tz = branch.timezone if branch is not None and branch.timezone else catalog.timezone
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


async def book_appointment(session: AsyncSession, call: AgentCall) -> BookedAnswer:
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
    return BookedAnswer(
        appointment_id=appointment.id,
        reference=appointment.reference,
        start=local_iso(appointment.starts_at, tz),
        end=local_iso(appointment.ends_at, tz),
        staff=result.context.staff.name,
        message=speech.booked(
            service.name,
            appointment.starts_at,
            result.context.staff.name,
            tz,
            reference=appointment.reference,
        ),
    )


async def _slot_taken(session: AsyncSession, start: datetime, taken: SlotTaken, tz: str) -> Refusal:
    slots: list[Slot] = list(taken.slots)
    names = await _staff_names(session, {s.staff_id for s in slots})
    return Refusal(
        "slot_taken",
        speech.slot_taken_with_alternatives(
            start, [(s.start, names.get(s.staff_id)) for s in slots], tz
        ),
        alternatives=_slots(slots, tz, names),
    )


def _not_allowed(error: PolicyViolation, action: speech.Action, tz: str) -> Refusal:
    reason = str(error.extra.get("reason", "not_modifiable"))
    deadline_raw = error.extra.get("deadline")
    deadline = datetime.fromisoformat(deadline_raw) if isinstance(deadline_raw, str) else None
    return Refusal(
        "not_allowed",
        speech.cancel_not_allowed(reason, deadline, tz_name=tz, action=action),
        reason=reason,
    )


async def cancel_appointment(session: AsyncSession, call: AgentCall) -> CancelledAnswer:
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
    return CancelledAnswer(
        appointment_id=appointment.id,
        fee=f"{fee:.2f}",
        currency=result.decision.currency,
        message=speech.cancelled(result.old_start, tz, fee, currency=result.decision.currency),
    )


async def reschedule_appointment(session: AsyncSession, call: AgentCall) -> RescheduledAnswer:
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
    return RescheduledAnswer(
        appointment_id=appointment.id,
        start=local_iso(new_start, tz),
        fee=f"{fee:.2f}",
        currency=result.decision.currency,
        message=speech.rescheduled(
            result.old_start, new_start, tz, fee, currency=result.decision.currency
        ),
    )


async def list_appointments(session: AsyncSession, call: AgentCall) -> ListAnswer:
    rows = await listed_appointments(session, call)
    items = [
        ListedOut(
            appointment_id=row.appointment.id,
            reference=row.appointment.reference,
            service=row.service,
            start=local_iso(row.appointment.starts_at, row.timezone),
            staff=row.staff,
            status=row.appointment.status,
        )
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
    return ListAnswer(appointments=items, message=message)


async def request_callback(session: AsyncSession, call: AgentCall) -> CallbackAnswer:
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
    return CallbackAnswer(callback_id=callback.id, message=speech.callback_created(preferred))


Handler = Callable[[AsyncSession, AgentCall], Awaitable[Answer]]
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
