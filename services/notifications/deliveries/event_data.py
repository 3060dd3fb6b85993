"""What a notice needs to know of its event: the appointment or callback as the change left
it, who could be told (customer, staff member, branch), and the raw values of its template.

Loaded in the notify job's tenant-bound session; a notice for something deleted meanwhile, a
reminder whose appointment was cancelled or moved away, loads as None: nothing to send.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.notifications.catalog.event_types import (
    CALLBACK_EVENTS,
    DEFAULT_LANGUAGE,
    REMINDER_EVENTS,
)
from shared.fields import utc_instant
from shared.hierarchy.chain import Chain
from shared.models import (
    LIVE_STATUSES,
    Appointment,
    Branch,
    CallbackRequest,
    Company,
    Customer,
    Service,
    Staff,
)


@dataclass(frozen=True)
class Contact:
    """One possible recipient: where to reach them and in which language."""

    name: str | None
    email: str | None
    phone: str | None
    language: str | None = None


@dataclass(frozen=True)
class EventData:
    event_type: str
    company_id: str
    chain: Chain
    appointment_id: str | None
    callback_id: str | None
    company_language: str
    customer: Contact | None
    staff: Contact | None
    branch: Contact | None
    raw: dict[str, Any] = field(default_factory=dict)


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return utc_instant(value)
    except ValueError:
        return None


def _money(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _address(branch: Branch) -> str:
    street = branch.address_line or ""
    city = " ".join(part for part in (branch.postal_code, branch.city) if part)
    return ", ".join(part for part in (street, city) if part)


def _language(company: Company) -> str:
    settings = company.settings or {}
    language = settings.get("language") if isinstance(settings, dict) else None
    return language if language in ("de", "en") else DEFAULT_LANGUAGE


def _branch_contact(branch: Branch | None) -> Contact | None:
    if branch is None:
        return None
    return Contact(branch.name, branch.email, branch.phone)


def _staff_contact(staff: Staff | None) -> Contact | None:
    return None if staff is None else Contact(staff.name, staff.email, staff.phone)


async def _get(session: AsyncSession, model: Any, id_: str | None) -> Any:
    if not id_:
        return None
    return await session.scalar(sa.select(model).where(model.id == id_))


async def load(session: AsyncSession, payload: Mapping[str, Any]) -> EventData | None:
    """The event's data, or None when there is nothing (left) to tell."""
    event_type = str(payload.get("event_type", ""))
    if event_type in CALLBACK_EVENTS:
        return await _callback_event(session, event_type, payload)
    return await _appointment_event(session, event_type, payload)


async def _appointment_event(
    session: AsyncSession, event_type: str, payload: Mapping[str, Any]
) -> EventData | None:
    appointment: Appointment | None = await _get(
        session, Appointment, payload.get("appointment_id")
    )
    if appointment is None:
        return None
    starts_at = _instant(payload.get("starts_at")) or appointment.starts_at
    ends_at = _instant(payload.get("ends_at")) or appointment.ends_at
    if event_type in REMINDER_EVENTS and (
        appointment.status not in LIVE_STATUSES or appointment.starts_at != starts_at
    ):
        return None  # cancelled or moved away since the reminder was staged
    staff_id = payload.get("staff_id") or appointment.staff_id
    company: Company = await _get(session, Company, appointment.company_id)
    branch: Branch | None = await _get(session, Branch, appointment.branch_id)
    service: Service | None = await _get(session, Service, appointment.service_id)
    staff: Staff | None = await _get(session, Staff, staff_id)
    customer: Customer | None = await _get(session, Customer, appointment.customer_id)
    raw: dict[str, Any] = {
        "company": company.name,
        "customer_name": customer.name if customer else None,
        "service": service.name if service else None,
        "staff": staff.name if staff else None,
        "branch": branch.name if branch else None,
        "branch_address": _address(branch) if branch else None,
        "branch_phone": branch.phone if branch else None,
        "timezone": branch.timezone if branch else company.timezone,
        "starts_at": starts_at,
        "ends_at": ends_at,
        "old_starts_at": _instant(payload.get("old_start")),
        "price": appointment.price,
        "fee": _money(payload.get("fee")),
        "deadline_at": _instant(payload.get("deadline")),  # the free-change deadline missed
        "currency": appointment.currency,
        "reason": payload.get("reason") or appointment.cancellation_reason,
        "error": payload.get("error") or appointment.sync_error,
        "quota_limit": payload.get("quota_limit"),
        "window_days": payload.get("window_days"),
        "appointment_id": appointment.id,
        "reference": appointment.reference,
    }
    return EventData(
        event_type=event_type,
        company_id=appointment.company_id,
        chain=Chain(
            appointment.company_id,
            appointment.branch_id,
            appointment.service_id,
            staff.id if staff else None,
        ),
        appointment_id=appointment.id,
        callback_id=None,
        company_language=_language(company),
        customer=None
        if customer is None
        else Contact(customer.name, customer.email, customer.phone, customer.language),
        staff=_staff_contact(staff),
        branch=_branch_contact(branch),
        raw=raw,
    )


def _callback_chain(callback: CallbackRequest, staff: Staff | None) -> Chain:
    """The config chain of a callback notice: its branch and, if of that branch, its staff."""
    branch_id = callback.branch_id or (staff.branch_id if staff else None)
    staff_id = staff.id if staff is not None and staff.branch_id == branch_id else None
    return Chain(callback.company_id, branch_id, None, staff_id)


async def _callback_event(
    session: AsyncSession, event_type: str, payload: Mapping[str, Any]
) -> EventData | None:
    callback: CallbackRequest | None = await _get(
        session, CallbackRequest, payload.get("callback_id")
    )
    if callback is None:
        return None
    company: Company = await _get(session, Company, callback.company_id)
    branch: Branch | None = await _get(session, Branch, callback.branch_id)
    # Who handles it now: the staff member it was escalated or assigned to.
    staff_id = payload.get("escalated_to") or payload.get("assigned_to") or callback.assigned_to
    staff: Staff | None = await _get(session, Staff, staff_id)
    assignee: Staff | None = await _get(session, Staff, callback.assigned_to)
    raw: dict[str, Any] = {
        "company": company.name,
        "customer_name": callback.customer_name,
        "callback_phone": callback.phone_number,
        "callback_reason": callback.reason,
        "preferred_time": callback.preferred_time,
        "branch": branch.name if branch else None,
        "timezone": branch.timezone if branch else company.timezone,
        "due_at": callback.due_at,
        "assigned_to": assignee.name if assignee else None,
        "escalation_level": payload.get("level"),
        "callback_id": callback.id,
    }
    customer: Customer | None = await _get(session, Customer, callback.customer_id)
    return EventData(
        event_type=event_type,
        company_id=callback.company_id,
        chain=Chain(
            callback.company_id,
            callback.branch_id or (staff.branch_id if staff else None),
            None,
            staff.id
            if staff and (not callback.branch_id or staff.branch_id == callback.branch_id)
            else None,
        ),
        appointment_id=None,
        callback_id=callback.id,
        company_language=_language(company),
        customer=Contact(
            callback.customer_name,
            customer.email if customer else None,
            callback.phone_number,
            customer.language if customer else None,
        ),
        staff=_staff_contact(staff),
        branch=_branch_contact(branch),
        raw=raw,
    )
