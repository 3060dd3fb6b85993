"""Request and response bodies of the booking REST API."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, TypeAdapter

from services.booking.appointments.masking import phone_for
from services.booking.scheduling.availability import Slot
from services.booking.scheduling.reasons import EmptyReason
from shared.fields import Email, Id, Instant, Name, Phone
from shared.local_time import local_iso, zone_of
from shared.models import Appointment

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
    """A free slot in the branch's local time: the one slot shape of availability answers and
    of `slot_taken` alternatives (the agent's adds the staff member's name: `NamedSlotOut`)."""

    start: str
    end: str
    staff_id: str

    @classmethod
    def of(cls, slot: Slot, timezone: str) -> SlotOut:
        return cls(
            start=local_iso(slot.start, timezone),
            end=local_iso(slot.end, timezone),
            staff_id=slot.staff_id,
        )

    @classmethod
    def many(cls, slots: Sequence[Slot], timezone: str) -> list[SlotOut]:
        """`of` for every slot, each instant formatted once (a slot's end is often another's
        start); the models built by one validation of the whole list (in pydantic-core: a fifth
        of the cost of a `model_construct` per slot)."""
        zone = zone_of(timezone)
        iso: dict[datetime, str] = {}

        def local(instant: datetime) -> str:
            text = iso.get(instant)
            if text is None:
                text = iso[instant] = instant.astimezone(zone).isoformat()
            return text

        return _SLOT_LIST.validate_python(
            [{"start": local(s.start), "end": local(s.end), "staff_id": s.staff_id} for s in slots]
        )


_SLOT_LIST = TypeAdapter(list[SlotOut])


class NamedSlotOut(BaseModel):
    """A slot as the agent gets it: `SlotOut` with the staff member's name before the id."""

    start: str
    end: str
    staff: str
    staff_id: str

    @classmethod
    def of(cls, slot: Slot, timezone: str, names: dict[str, str]) -> NamedSlotOut:
        out = SlotOut.of(slot, timezone)
        return cls(
            start=out.start, end=out.end, staff=names.get(slot.staff_id, ""), staff_id=out.staff_id
        )


class AvailabilityOut(BaseModel):
    slots: list[SlotOut]
    reason: EmptyReason | None = Field(
        default=None,
        description=(
            "Why `slots` is empty (null when there are slots). no_staff_for_service: no active "
            "staff member (or not the named one) offers the service in the branch; in_the_past: "
            "the requested days lie before now + minimum notice; beyond_window: after the "
            "booking window; closed: no working hours on those days (or all time off); "
            "fully_booked: hours exist but every start is taken. When several apply, the first "
            "in this order wins; across branches, the one nearest to having slots "
            "(fully_booked, then closed, beyond_window, in_the_past, no_staff_for_service)."
        ),
    )


LOCAL = "In the branch's local offset (ISO 8601 with offset, e.g. 2026-03-02T10:00:00+01:00)"


class CustomerRef(BaseModel):
    name: str
    phone: str | None = Field(
        description="E.164 for keys with the admin scope, masked for others (+49170*****67)"
    )


class NamedRef(BaseModel):
    id: str
    name: str


@dataclass(frozen=True)
class Names:
    """What an appointment's answer shows beside its ids: the customer's name and phone
    number (E.164), the service's and the staff member's names."""

    customer_name: str
    customer_phone: str | None
    service_name: str
    staff_name: str


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
    customer: CustomerRef
    service: NamedRef
    staff: NamedRef
    start: str = Field(description=LOCAL)
    end: str = Field(description=LOCAL)
    status: Literal["confirmed", "cancelled", "rescheduled", "completed", "no_show", "pending"]
    sync_status: Literal["local_only", "pending", "synced", "failed"]
    calcom_booking_uid: str | None
    source: Literal["agent", "api", "calcom"]
    price: str
    currency: str
    notes: str | None
    created_at: str = Field(description=LOCAL)

    @classmethod
    def of(
        cls, appointment: Appointment, timezone: str, names: Names, *, full_phone: bool
    ) -> AppointmentOut:
        """Instants in the branch's local offset, money as a two-place string, the phone
        number masked unless `full_phone`."""
        return cls(
            id=appointment.id,
            reference=appointment.reference,
            company_id=appointment.company_id,
            branch_id=appointment.branch_id,
            service_id=appointment.service_id,
            staff_id=appointment.staff_id,
            customer_id=appointment.customer_id,
            customer=CustomerRef(
                name=names.customer_name,
                phone=phone_for(names.customer_phone, full=full_phone),
            ),
            service=NamedRef(id=appointment.service_id, name=names.service_name),
            staff=NamedRef(id=appointment.staff_id, name=names.staff_name),
            start=local_iso(appointment.starts_at, timezone),
            end=local_iso(appointment.ends_at, timezone),
            status=appointment.status,
            sync_status=appointment.sync_status,
            calcom_booking_uid=appointment.calcom_booking_uid,
            source=appointment.source,
            price=f"{appointment.price:.2f}",
            currency=appointment.currency,
            notes=appointment.notes,
            created_at=local_iso(appointment.created_at, timezone),
        )


class RescheduleOut(AppointmentOut):
    fee: str = Field(description="Fee of the move (decimal string)")


NEXT_CURSOR = "Pass as `cursor` for the next page; null on the last page"


class AppointmentList(BaseModel):
    items: list[AppointmentOut]
    next_cursor: str | None = Field(description=NEXT_CURSOR)


class CancelOut(BaseModel):
    status: Literal["cancelled"]
    appointment_id: str
    fee: str = Field(description="Decimal string with two places")
    currency: str
