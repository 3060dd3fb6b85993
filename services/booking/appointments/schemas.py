"""Request and response bodies of the booking REST API."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints

from shared.fields import Email, Id, Instant, Name, Phone

Notes = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CustomerIn(Strict):
    name: Name
    phone: Phone
    email: Email | None = None


class AppointmentCreate(Strict):
    service_id: Id
    staff_id: Id | None = None
    branch_id: Id | None = None
    start: Instant
    customer: CustomerIn
    notes: Notes | None = None


ACCEPT_FEE = (
    "Accept the fee the policy charges for this change; without it a change that costs a fee "
    "answers 409 fee_required with fee and currency, and nothing changes"
)


class CancelRequest(Strict):
    reason: Reason | None = None
    accept_fee: StrictBool = Field(default=False, description=ACCEPT_FEE)


class RescheduleRequest(Strict):
    start: Instant
    accept_fee: StrictBool = Field(default=False, description=ACCEPT_FEE)


class SlotOut(BaseModel):
    start: str
    end: str
    staff_id: str


class AvailabilityOut(BaseModel):
    slots: list[SlotOut]


class AppointmentOut(BaseModel):
    id: str
    reference: str = Field(
        description="Booking reference: 6 characters, unique per company, read out by callers",
        examples=["K7M2P9"],
    )
    company_id: str
    branch_id: str
    service_id: str
    staff_id: str
    customer_id: str
    start: str
    end: str
    status: Literal["confirmed", "cancelled", "rescheduled", "completed", "no_show", "pending"]
    sync_status: Literal["local_only", "pending", "synced", "failed"]
    calcom_booking_uid: str | None
    source: Literal["agent", "api", "calcom"]
    price: str
    currency: str
    notes: str | None
    created_at: str


class RescheduleOut(AppointmentOut):
    fee: str = Field(description="Fee of the move (decimal string)")


class AppointmentList(BaseModel):
    items: list[AppointmentOut]


class CancelOut(BaseModel):
    status: Literal["cancelled"]
    appointment_id: str
    fee: str = Field(description="Decimal string with two places")
    currency: str
