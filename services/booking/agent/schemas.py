"""The agent's answers (HTTP 200; the outcome is in `status`), serialized at the edge. The
field order is the JSON's key order that Retell receives."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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


# --- What the agent sends: each function's arguments (documentation and the Retell tool's
# `parameters`; the functions read them tolerantly, so a loose value gets a question back, not
# a 422). All values are strings, as a voice agent says them.


def _time(what: str) -> Any:
    return Field(None, description=f"{what}, HH:MM (24 h) in the branch's local time.")


_SERVICE = "The service as the caller names it (matched tolerantly, e.g. 'herrenhaarschnitt')."
_BRANCH = "The branch as the caller names it; omit for the called number's branch."
_STAFF = "The staff member the caller asks for; omit for anyone."
_NAME = "The customer's full name."
_PHONE = "The customer's number (E.164); omit to use the caller ID."
_REFERENCE = "The booking reference the caller reads out (picks one appointment)."


class CheckAvailabilityArgs(BaseModel):
    """Free slots on a day (with `time`: that slot, else the nearest alternatives)."""

    service: str = Field(description=_SERVICE)
    date: str = Field(
        description="The day wanted, YYYY-MM-DD.", json_schema_extra={"format": "date"}
    )
    time: str | None = _time("A wanted start time")
    branch: str | None = Field(None, description=_BRANCH)
    staff: str | None = Field(None, description=_STAFF)


class BookAppointmentArgs(BaseModel):
    """Book a slot for the customer."""

    service: str = Field(description=_SERVICE)
    date: str = Field(description="The day, YYYY-MM-DD.", json_schema_extra={"format": "date"})
    time: str = Field(description="The start time, HH:MM (24 h) in the branch's local time.")
    customer_name: str = Field(description=_NAME)
    customer_phone: str | None = Field(None, description=_PHONE)
    customer_email: str | None = Field(None, description="The customer's e-mail address.")
    branch: str | None = Field(None, description=_BRANCH)
    staff: str | None = Field(None, description=_STAFF)
    notes: str | None = Field(None, description="Anything the salon should know.")


class CancelAppointmentArgs(BaseModel):
    """Cancel one of the caller's appointments (a fee may apply: the answer says which)."""

    date: str = Field(
        description="The day of the appointment, YYYY-MM-DD.", json_schema_extra={"format": "date"}
    )
    time: str | None = _time("Its start time, when the caller has several that day")
    reference: str | None = Field(None, description=_REFERENCE)
    customer_name: str | None = Field(None, description=_NAME + " Needed with a reference.")
    appointment_id: str | None = Field(None, description="An id from list_appointments.")
    reason: str | None = Field(None, description="Why the caller cancels.")


class RescheduleAppointmentArgs(BaseModel):
    """Move one of the caller's appointments (a fee may apply: the answer says which)."""

    date: str = Field(
        description="The day of the appointment, YYYY-MM-DD.", json_schema_extra={"format": "date"}
    )
    new_date: str = Field(
        description="The new day, YYYY-MM-DD.", json_schema_extra={"format": "date"}
    )
    new_time: str = Field(description="The new start time, HH:MM (24 h), branch local time.")
    time: str | None = _time("Its current start time, when the caller has several that day")
    reference: str | None = Field(None, description=_REFERENCE)
    customer_name: str | None = Field(None, description=_NAME + " Needed with a reference.")
    appointment_id: str | None = Field(None, description="An id from list_appointments.")


class ListAppointmentsArgs(BaseModel):
    """The caller's upcoming appointments (without a caller ID: reference and name)."""

    reference: str | None = Field(None, description=_REFERENCE)
    customer_name: str | None = Field(None, description=_NAME + " Needed with a reference.")


class RequestCallbackArgs(BaseModel):
    """Ask the salon to call back."""

    reason: str | None = Field(None, description="What the call is about.")
    preferred_time: str | None = Field(None, description="When the caller can be reached.")
    customer_name: str | None = Field(None, description=_NAME)
    customer_phone: str | None = Field(None, description=_PHONE)


class RetellCall(BaseModel):
    """The part of Retell's call object read here (Retell sends more; all is accepted)."""

    model_config = ConfigDict(extra="allow")

    call_id: str | None = None
    agent_id: str | None = None
    call_type: str | None = Field(None, examples=["phone_call"])
    direction: str | None = Field(None, examples=["inbound"])
    from_number: str | None = Field(None, description="The caller ID (E.164).")
    to_number: str | None = Field(None, description="The called number: selects the salon.")


class RefusalAnswer(RefusalOut):
    """A refusal any function may answer (status e.g. invalid_request, not_found,
    slot_taken, not_allowed, needs_callback); nothing was done."""


FunctionAnswer = Answer | RefusalAnswer


class RetellFunction(BaseModel):
    """One custom function in Retell's format (paste into the agent's tools)."""

    type: Literal["custom"] = "custom"
    name: str
    description: str
    url: str
    method: Literal["POST"] = "POST"
    parameters: dict[str, Any]  # a JSON Schema: its shape is the data
    speak_during_execution: bool = False
    speak_after_execution: bool = True
    timeout_ms: int


class RetellFunctionsOut(BaseModel):
    items: list[RetellFunction]
