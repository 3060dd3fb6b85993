"""Booking REST API: availability and appointments (Bearer key, one request = one transaction)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse

from services.booking.appointments import changes, idempotency
from services.booking.appointments import queries as appointments_query
from services.booking.appointments.booking import BookingRequest, book
from services.booking.appointments.refusal_notices import QuotaNotices
from services.booking.appointments.schemas import (
    AppointmentCreate,
    AppointmentList,
    AppointmentOut,
    AvailabilityOut,
    CancelOut,
    CancelRequest,
    RescheduleOut,
    RescheduleRequest,
)
from services.booking.appointments.serialize import appointment_json
from services.booking.ops.failures import ApiBookingAttempt
from shared.fields import Day, Instant, Phone
from shared.web.auth import ServicePrincipal
from shared.web.deps import Session

router = APIRouter(prefix="/v1", tags=["appointments"])
AppointmentStatus = Literal[
    "confirmed", "cancelled", "rescheduled", "completed", "no_show", "pending"
]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]


@router.get("/availability", response_model=AvailabilityOut)
async def get_availability(
    principal: ServicePrincipal,
    session: Session,
    service_id: Annotated[str, Query(max_length=36)],
    date_: Annotated[Day, Query(alias="date")],
    branch_id: Annotated[str | None, Query(max_length=36)] = None,
    staff_id: Annotated[str | None, Query(max_length=36)] = None,
    days: Annotated[int, Query(ge=1, le=31)] = 1,
) -> dict[str, Any]:
    """Free slots of a service from `date` on, for `days` days (local times with offset)."""
    slots = await appointments_query.availability(
        session,
        service_id=service_id,
        first_date=date_,
        days=days,
        branch_id=branch_id,
        staff_id=staff_id,
    )
    return {"slots": slots}


@router.post(
    "/appointments",
    status_code=201,
    response_model=AppointmentOut,
    responses={409: {"description": "slot_taken"}, 422: {"description": "invalid"}},
)
async def create_appointment(
    request: Request,
    attempt: ApiBookingAttempt,  # first: it sees errors after the session rolled back
    principal: ServicePrincipal,
    session: Session,
    body: AppointmentCreate,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Book an appointment. Same Idempotency-Key + same body -> the same answer again."""
    attempt.arm(service_id=body.service_id, staff_id=body.staff_id, start=body.start)
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
    status = 201 if result.created else 200
    payload = appointment_json(result.appointment, result.context.timezone)
    if idempotency_key:
        await idempotency.complete(session, idempotency_key, status, payload)
    return JSONResponse(payload, status_code=status)


@router.get("/appointments/{appointment_id}", response_model=AppointmentOut)
async def get_appointment(
    principal: ServicePrincipal, session: Session, appointment_id: str
) -> dict[str, Any]:
    appointment, timezone = await appointments_query.get_appointment(session, appointment_id)
    return appointment_json(appointment, timezone)


@router.get("/appointments", response_model=AppointmentList)
async def list_appointments(
    principal: ServicePrincipal,
    session: Session,
    phone: Annotated[Phone | None, Query()] = None,
    from_: Annotated[Instant | None, Query(alias="from")] = None,
    to: Annotated[Instant | None, Query()] = None,
    status: Annotated[AppointmentStatus | None, Query()] = None,
) -> dict[str, Any]:
    """Appointments by customer phone and/or time range, earliest first."""
    items = await appointments_query.list_appointments(
        session, phone=phone, start_from=from_, start_to=to, status=status
    )
    return {"items": items}


@router.post(
    "/appointments/{appointment_id}/cancel",
    response_model=CancelOut,
    responses={
        409: {"description": "policy_violation or fee_required"},
        503: {"description": "no decision"},
    },
)
async def cancel_appointment(
    request: Request,
    notices: QuotaNotices,  # before the session: it stages after the rollback
    principal: ServicePrincipal,
    session: Session,
    appointment_id: str,
    body: CancelRequest | None = None,
) -> dict[str, Any]:
    """Cancel under the effective policy; the fee (if any) is in the answer."""
    appointment, _tz = await appointments_query.get_appointment(session, appointment_id)
    result = await changes.cancel(
        session,
        request.app.state.policy,
        appointment,
        actor="api",
        reason=body.reason if body else None,
        accept_fee=body.accept_fee if body else False,
    )
    return {
        "status": "cancelled",
        "appointment_id": appointment.id,
        "fee": f"{result.decision.fee:.2f}",
        "currency": result.decision.currency,
    }


@router.post(
    "/appointments/{appointment_id}/reschedule",
    response_model=RescheduleOut,
    responses={409: {"description": "slot_taken, policy_violation or fee_required"}, 503: {}},
)
async def reschedule_appointment(
    request: Request,
    notices: QuotaNotices,  # before the session: it stages after the rollback
    principal: ServicePrincipal,
    session: Session,
    appointment_id: str,
    body: RescheduleRequest,
) -> dict[str, Any]:
    """Move to `start` in one atomic step (the old time is freed only if the new one holds)."""
    appointment, timezone = await appointments_query.get_appointment(session, appointment_id)
    result = await changes.reschedule(
        session,
        request.app.state.policy,
        appointment,
        body.start,
        actor="api",
        accept_fee=body.accept_fee,
    )
    payload = appointment_json(result.appointment, timezone)
    payload["fee"] = f"{result.decision.fee:.2f}"
    return payload
