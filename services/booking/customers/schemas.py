"""Answers of the customers API (operator lookups)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from services.booking.appointments.schemas import NEXT_CURSOR, AppointmentOut

LOCAL = "In the company's local offset (ISO 8601 with offset)"


class CustomerOut(BaseModel):
    id: str
    name: str
    phone: str | None = Field(
        description="E.164 for keys with the admin scope, masked for others (+49170*****67)"
    )
    email: str | None
    created_at: str = Field(description=LOCAL)


class CustomerList(BaseModel):
    items: list[CustomerOut]
    next_cursor: str | None = Field(description=NEXT_CURSOR)


class CustomerDetail(CustomerOut):
    upcoming: list[AppointmentOut] = Field(
        description="Live (confirmed or pending) appointments from now on, earliest first"
    )
    no_show_count: int = Field(description="Appointments this customer did not come to")
