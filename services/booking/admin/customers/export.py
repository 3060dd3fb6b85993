"""DSGVO export: everything stored about one customer, as one typed JSON document."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.admin.customers.personal_data import Identity, identity, scrub
from services.booking.admin.customers.queries import OwnRows, mentioning, own_rows
from services.booking.admin.customers.schemas import (
    ApiCallRecord,
    AppointmentRecord,
    CallbackRecord,
    CallRecord,
    CustomerExport,
    CustomerRecord,
    DeliveryRecord,
    ModificationRecord,
    Ref,
    WebhookEventRecord,
)
from shared.db.tenancy import current_company, current_tenant
from shared.db.types import utcnow
from shared.errors import NotFound
from shared.local_time import local_iso
from shared.models import (
    ApiCallLog,
    Appointment,
    AppointmentModification,
    Branch,
    Call,
    CallbackRequest,
    Customer,
    NotificationDelivery,
    Service,
    Staff,
    WebhookEvent,
)


class _Clock:
    """Instants in the offset of their branch, else of the company."""

    def __init__(self, company_tz: str, branches: dict[str, Branch]) -> None:
        self.company_tz = company_tz
        self.branches = branches

    def at(self, instant: datetime | None, branch_id: str | None = None) -> str | None:
        if instant is None:
            return None
        branch = self.branches.get(branch_id or "")
        return local_iso(instant, branch.timezone if branch else self.company_tz)

    def must(self, instant: datetime, branch_id: str | None = None) -> str:
        text = self.at(instant, branch_id)
        assert text is not None
        return text


async def export_customer(session: AsyncSession, customer_id: str) -> CustomerExport:
    """The customer's export (404 when not in the session's company)."""
    customer = await session.scalar(sa.select(Customer).where(Customer.id == customer_id))
    if customer is None:
        raise NotFound("No such customer.")
    company = await current_company(session)
    branches = {b.id: b for b in (await session.execute(sa.select(Branch))).scalars()}
    clock = _Clock(company.timezone, branches)
    own = await own_rows(session, customer)
    who = identity(customer.phone, customer.email, customer.name).with_ids(own.retell_call_ids)
    return CustomerExport(
        exported_at=utcnow().isoformat(),
        customer=CustomerRecord(
            id=customer.id,
            name=customer.name,
            phone=customer.phone,
            email=customer.email,
            language=customer.language,
            notes=customer.notes,
            created_at=clock.must(customer.created_at),
            updated_at=clock.must(customer.updated_at),
            erased_at=clock.at(customer.erased_at),
        ),
        appointments=await _appointments(session, customer.id, clock),
        calls=await _calls(session, own, clock),
        callbacks=await _callbacks(session, own, clock),
        notification_deliveries=await _deliveries(session, own, clock),
        modifications=await _modifications(session, customer.id, clock),
        webhook_events=await _webhook_events(session, who, clock),
        api_calls=await _api_calls(session, who, clock),
    )


async def _appointments(
    session: AsyncSession, customer_id: str, clock: _Clock
) -> list[AppointmentRecord]:
    rows = await session.execute(
        sa.select(Appointment, Service.name, Staff.name)
        .join(Service, Service.id == Appointment.service_id)
        .join(Staff, Staff.id == Appointment.staff_id)
        .where(Appointment.customer_id == customer_id)
        .order_by(Appointment.starts_at, Appointment.id)
    )
    found = []
    for appointment, service_name, staff_name in rows:
        branch = clock.branches.get(appointment.branch_id)
        where = appointment.branch_id
        found.append(
            AppointmentRecord(
                id=appointment.id,
                reference=getattr(appointment, "reference", None),
                branch=Ref(id=appointment.branch_id, name=branch.name if branch else None),
                service=Ref(id=appointment.service_id, name=service_name),
                staff=Ref(id=appointment.staff_id, name=staff_name),
                start=clock.must(appointment.starts_at, where),
                end=clock.must(appointment.ends_at, where),
                status=appointment.status,
                source=appointment.source,
                price=f"{appointment.price:.2f}",
                currency=appointment.currency,
                notes=appointment.notes,
                cancellation_reason=appointment.cancellation_reason,
                cancelled_at=clock.at(appointment.cancelled_at, where),
                created_at=clock.must(appointment.created_at, where),
            )
        )
    return found


async def _calls(session: AsyncSession, own: OwnRows, clock: _Clock) -> list[CallRecord]:
    rows = await session.execute(
        sa.select(Call).where(Call.id.in_(own.calls)).order_by(Call.created_at, Call.id)
    )
    return [
        CallRecord(
            id=call.id,
            retell_call_id=call.retell_call_id,
            direction=call.direction,
            from_number=call.from_number,
            to_number=call.to_number,
            status=call.status,
            started_at=clock.at(call.started_at, call.branch_id),
            ended_at=clock.at(call.ended_at, call.branch_id),
            duration_ms=call.duration_ms,
            disconnection_reason=call.disconnection_reason,
            transcript=call.transcript,
            analysis=call.analysis,
        )
        for call in rows.scalars()
    ]


async def _callbacks(session: AsyncSession, own: OwnRows, clock: _Clock) -> list[CallbackRecord]:
    rows = await session.execute(
        sa.select(CallbackRequest)
        .where(CallbackRequest.id.in_(own.callbacks))
        .order_by(CallbackRequest.created_at, CallbackRequest.id)
    )
    return [
        CallbackRecord(
            id=cb.id,
            phone_number=cb.phone_number,
            customer_name=cb.customer_name,
            reason=cb.reason,
            preferred_time=cb.preferred_time,
            status=cb.status,
            priority=cb.priority,
            due_at=clock.must(cb.due_at, cb.branch_id),
            created_at=clock.must(cb.created_at, cb.branch_id),
            resolved_at=clock.at(cb.resolved_at, cb.branch_id),
            resolution_notes=cb.resolution_notes,
        )
        for cb in rows.scalars()
    ]


async def _deliveries(session: AsyncSession, own: OwnRows, clock: _Clock) -> list[DeliveryRecord]:
    _D = NotificationDelivery
    scope: list[Any] = []
    if own.appointments:
        scope.append(_D.appointment_id.in_(own.appointments))
    if own.callbacks:
        scope.append(_D.callback_id.in_(own.callbacks))
    if not scope:
        return []
    rows = await session.execute(
        sa.select(_D)
        .where(sa.or_(*scope), _D.recipient_kind == "customer")
        .order_by(_D.created_at, _D.id)
    )
    return [
        DeliveryRecord(
            id=d.id,
            event_type=d.event_type,
            channel=d.channel,
            recipient=d.recipient_masked,
            status=d.status,
            attempts=d.attempts,
            appointment_id=d.appointment_id,
            callback_id=d.callback_id,
            sent_at=clock.at(d.sent_at),
            created_at=clock.must(d.created_at),
        )
        for d in rows.scalars()
    ]


async def _modifications(
    session: AsyncSession, customer_id: str, clock: _Clock
) -> list[ModificationRecord]:
    _M = AppointmentModification
    rows = await session.execute(
        sa.select(_M).where(_M.customer_id == customer_id).order_by(_M.created_at, _M.id)
    )
    return [
        ModificationRecord(
            id=m.id,
            appointment_id=m.appointment_id,
            modification_type=m.modification_type,
            actor=m.actor,
            old_start=clock.at(m.old_starts_at),
            new_start=clock.at(m.new_starts_at),
            fee=f"{m.fee:.2f}",
            currency=m.currency,
            within_policy=m.within_policy,
            reason=m.reason,
            created_at=clock.must(m.created_at),
        )
        for m in rows.scalars()
    ]


async def _webhook_events(
    session: AsyncSession, who: Identity, clock: _Clock
) -> list[WebhookEventRecord]:
    rows = await session.execute(
        sa.select(WebhookEvent)
        .where(
            WebhookEvent.company_id == current_tenant(session),
            mentioning([WebhookEvent.payload], who),
        )
        .order_by(WebhookEvent.created_at, WebhookEvent.id)
    )
    return [
        WebhookEventRecord(
            id=event.id,
            source=event.source,
            event_type=event.event_type,
            status=event.status,
            created_at=clock.must(event.created_at),
            payload=event.payload,
        )
        for event in rows.scalars()
        if scrub(event.payload, who)[1]
    ]


async def _api_calls(session: AsyncSession, who: Identity, clock: _Clock) -> list[ApiCallRecord]:
    columns = (ApiCallLog.endpoint, ApiCallLog.request_payload, ApiCallLog.response_body)
    rows = await session.execute(
        sa.select(ApiCallLog)
        .where(ApiCallLog.company_id == current_tenant(session), mentioning(columns, who))
        .order_by(ApiCallLog.created_at, ApiCallLog.id)
    )
    return [
        ApiCallRecord(
            id=log.id,
            service=log.service,
            method=log.method,
            endpoint=log.endpoint,
            response_status=log.response_status,
            created_at=clock.must(log.created_at),
        )
        for log in rows.scalars()
        if any(scrub(v, who)[1] for v in (log.endpoint, log.request_payload, log.response_body))
    ]
