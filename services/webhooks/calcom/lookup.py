"""Who and what a Cal.com booking is about, in our terms: service, staff member, customer.

Cal.com names an event type, an organizer e-mail and an attendee; the mirror needs our rows.
The lookups tolerate what Cal.com really sends (e-mails in another case, phone numbers in any
format or none) and prefer active rows, so a retired duplicate never wins over the live one.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.webhooks.calcom.snapshot import BookingSnapshot
from shared.appointments.customers import upsert_customer
from shared.models import Appointment, Customer, Service, Staff
from shared.phones import e164


async def service_for_event_type(
    session: AsyncSession, event_type_id: int | None
) -> Service | None:
    """The service booked through a Cal.com event type (an active one first)."""
    if event_type_id is None:
        return None
    return await session.scalar(
        sa.select(Service)
        .where(Service.calcom_event_type_id == event_type_id)
        .order_by(Service.active.desc(), Service.id)
        .limit(1)
    )


async def event_type_of(session: AsyncSession, row: Appointment) -> int | None:
    """The Cal.com event type of an appointment's service: the slots cache to invalidate."""
    return await session.scalar(
        sa.select(Service.calcom_event_type_id).where(Service.id == row.service_id)
    )


async def staff_for_organizer(session: AsyncSession, email: str | None) -> Staff | None:
    """The organizer: by `calcom_user_email`, else by `email` (either case)."""
    if not email:
        return None
    forms = {email, email.lower()}
    for column in (Staff.calcom_user_email, Staff.email):
        staff = await session.scalar(
            sa.select(Staff)
            .where(column.in_(forms))
            .order_by(Staff.active.desc(), Staff.id)
            .limit(1)
        )
        if staff is not None:
            return staff
    return None


async def customer_for_attendee(
    session: AsyncSession, company_id: str, snap: BookingSnapshot
) -> str:
    """The attendee's customer: by phone (E.164) when given, else by e-mail; created if new."""
    phone = e164(snap.attendee_phone)
    email = snap.attendee_email
    name = (snap.attendee_name or email or "Cal.com guest")[:200]
    if phone is not None:
        found = await session.scalar(sa.select(Customer.id).where(Customer.phone == phone))
        if found is not None:
            return str(found)
        return await upsert_customer(
            session,
            company_id=company_id,
            phone=phone,
            name=name,
            email=email,
            known_id=None,
            known_name=None,
        )
    if email:
        found = await session.scalar(
            sa.select(Customer.id)
            .where(Customer.email.in_({email, email.lower()}))
            .order_by(Customer.created_at, Customer.id)
            .limit(1)
        )
        if found is not None:
            return str(found)
    customer = Customer(company_id=company_id, name=name, phone=None, email=email)
    session.add(customer)
    await session.flush()  # the unit of work would not order it before the appointment
    return customer.id
