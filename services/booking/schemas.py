"""Request and response bodies of the booking REST API."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

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


class CancelRequest(Strict):
    reason: Reason | None = None


class RescheduleRequest(Strict):
    start: Instant


class SlotOut(BaseModel):
    start: str
    end: str
    staff_id: str


class AvailabilityOut(BaseModel):
    slots: list[SlotOut]


class AppointmentOut(BaseModel):
    id: str
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
