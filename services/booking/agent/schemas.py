"""The agent's answers (HTTP 200; the outcome is in `status`), serialized at the edge. The
field order is the JSON's key order that Retell receives."""

from __future__ import annotations

from pydantic import BaseModel

from services.booking.appointments.schemas import NamedSlotOut


class Said(BaseModel):
    """An outcome and the sentence the agent says (refusals add what they explain)."""

    status: str
    message: str


class RefusalOut(Said):
    alternatives: list[NamedSlotOut] | None = None  # slot_taken
    reason: str | None = None  # not_allowed, not_found after too many tries


class AvailabilityAnswer(BaseModel):
    status: str  # available / unavailable
    slots: list[NamedSlotOut]
    message: str


class BookedAnswer(BaseModel):
    status: str = "booked"
    appointment_id: str
    reference: str
    start: str
    end: str
    staff: str
    message: str


class CancelledAnswer(BaseModel):
    status: str = "cancelled"
    appointment_id: str
    fee: str
    currency: str
    message: str


class RescheduledAnswer(BaseModel):
    status: str = "rescheduled"
    appointment_id: str
    start: str
    fee: str
    currency: str
    message: str


class ListedOut(BaseModel):
    appointment_id: str
    reference: str
    service: str
    start: str
    staff: str
    status: str


class ListAnswer(BaseModel):
    status: str = "ok"
    appointments: list[ListedOut]
    message: str


class CallbackAnswer(BaseModel):
    status: str = "created"
    callback_id: str
    message: str


class CallerVariables(BaseModel):
    """The inbound webhook's dynamic variables (empty strings: unknown)."""

    branch_name: str = ""
    company_name: str = ""
    customer_name: str = ""
    customer_known: str = "false"
    next_appointment: str = ""


class DynamicVariables(BaseModel):
    dynamic_variables: CallerVariables


class InboundAnswer(BaseModel):
    call_inbound: DynamicVariables


Answer = (
    AvailabilityAnswer
    | BookedAnswer
    | CancelledAnswer
    | RescheduledAnswer
    | ListAnswer
    | CallbackAnswer
)
