"""Booking REST API: availability and appointments (Bearer key, one request = one transaction)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse

from services.booking.appointments import service
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
from services.booking.ops.failures import ApiBookingAttempt
from shared.fields import Day, Instant, Phone
from shared.web.auth import ReaderPrincipal, ServicePrincipal
from shared.web.deps import Session
from shared.web.paging import MAX_LIMIT

router = APIRouter(prefix="/v1", tags=["appointments"])
AppointmentStatus = Literal[
    "confirmed", "cancelled", "rescheduled", "completed", "no_show", "pending"
]
CURSOR = "`next_cursor` of the previous page (opaque); omit for the first page"
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
) -> AvailabilityOut:
    """Free slots of a service from `date` on, for `days` days (local times with offset); with
    no slots, `reason` says why."""
    return await service.availability(
        session,
        service_id=service_id,
        first_date=date_,
        days=days,
        branch_id=branch_id,
        staff_id=staff_id,
    )


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
    created = await service.create(
        session, body, idempotency_key, full_phone=principal.has("admin")
    )
    return JSONResponse(created.appointment.model_dump(), status_code=created.status)


@router.get(
    "/appointments/{appointment_id}",
    response_model=AppointmentOut,
    responses={404: {"description": "No such appointment (in this company)"}},
)
async def get_appointment(
    principal: ReaderPrincipal, session: Session, appointment_id: str
) -> AppointmentOut:
    """One appointment with its customer, service and staff names (scope `service` or
    `operator`; the phone number is masked unless the key has the admin scope); instants in
    the branch's local offset."""
    return await service.read(session, appointment_id, full_phone=principal.has("admin"))


@router.get(
    "/appointments",
    response_model=AppointmentList,
    responses={422: {"description": "Invalid filter, limit or cursor; `field` names it"}},
)
async def list_appointments(
    principal: ReaderPrincipal,
    session: Session,
    phone: Annotated[Phone | None, Query()] = None,
    from_: Annotated[Instant | None, Query(alias="from")] = None,
    to: Annotated[Instant | None, Query()] = None,
    status: Annotated[AppointmentStatus | None, Query()] = None,
    cursor: Annotated[str | None, Query(max_length=200, description=CURSOR)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 200,
) -> AppointmentList:
    """Appointments by customer phone and/or time range, earliest first (scope `service` or
    `operator`; keyset pages: pass `next_cursor` as `cursor`); instants in the branch's local
    offset, phone numbers masked unless the key has the admin scope."""
    return await service.listed(
        session,
        phone=phone,
        start_from=from_,
        start_to=to,
        status=status,
        cursor=cursor,
        limit=limit,
        full_phone=principal.has("admin"),
    )


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
) -> CancelOut:
    """Cancel under the effective policy; the fee (if any) is in the answer."""
    return await service.cancel(
        session,
        request.app.state.policy,
        appointment_id,
        reason=body.reason if body else None,
        accept_fee=body.accept_fee if body else False,
    )


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
) -> RescheduleOut:
    """Move to `start` in one atomic step (the old time is freed only if the new one holds)."""
    return await service.reschedule(
        session,
        request.app.state.policy,
        appointment_id,
        body.start,
        accept_fee=body.accept_fee,
        full_phone=principal.has("admin"),
    )
