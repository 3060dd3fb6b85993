"""DSGVO erasure of one customer: their personal data removed from every table, one transaction.

The customer's own rows (appointments, calls, callbacks, deliveries, modifications) are found
by id and their personal columns cleared; rows that merely mention them (webhook payloads, API
call logs, idempotency answers, outbox payloads, failure records, and any later table with a
`company_id`) are found by searching their phone, e-mail and name in every text and JSON
column. Appointments stay (times, service, staff, status) pointing at the anonymized customer
row, so statistics still count them. See docs/adr/0015-data-protection.md.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.admin.customers.personal_data import (
    ERASED,
    ERASED_NAME,
    Identity,
    erased_hash,
    identity,
    phone_placeholder,
    scrub,
    scrub_text,
)
from services.booking.admin.customers.queries import ids, mentioning, own_rows, update_rows
from services.booking.admin.customers.schemas import ErasureSummary
from services.booking.admin.customers.sweep import sweep
from shared.db.engine import after_commit
from shared.db.tenancy import current_tenant
from shared.db.types import utcnow
from shared.errors import NotFound
from shared.models import (
    ApiCallLog,
    Appointment,
    AppointmentModification,
    Call,
    CallbackEscalation,
    CallbackRequest,
    Customer,
    NotificationDelivery,
    WebhookEvent,
)

log = logging.getLogger(__name__)

# What an erased webhook body becomes (a JSON document: the shape is the data).
ERASED_PAYLOAD: dict[str, Any] = {"erased": True}


async def erase_customer(
    session: AsyncSession, customer_id: str, redis: Redis | None = None
) -> ErasureSummary:
    """Erase the customer (404 when not in the session's company); idempotent."""
    tenant = current_tenant(session)
    customer = await session.scalar(
        sa.select(Customer).where(Customer.id == customer_id).with_for_update()
    )
    if customer is None:
        raise NotFound("No such customer.")
    already = customer.erased_at is not None
    who = identity(customer.phone, customer.email, customer.name)
    now = utcnow()
    counts: Counter[str] = Counter()

    own = await own_rows(session, customer)
    counts["appointments"] += await update_rows(
        session,
        Appointment,
        [
            Appointment.customer_id == customer.id,
            sa.or_(Appointment.notes.is_not(None), Appointment.cancellation_reason.is_not(None)),
        ],
        notes=None,
        cancellation_reason=None,
    )
    if own.calls:
        counts["calls"] += await update_rows(
            session,
            Call,
            [
                Call.id.in_(own.calls),
                sa.or_(
                    Call.from_number.is_not(None),
                    Call.transcript.is_not(None),
                    Call.analysis.is_not(None),
                ),
            ],
            from_number=None,
            transcript=None,
            analysis=sa.null(),
        )
    counts["callback_requests"] += await _erase_callbacks(session, own.callbacks)
    counts["notification_deliveries"] += await _erase_deliveries(
        session, own.appointments, own.callbacks
    )
    counts["appointment_modifications"] += await update_rows(
        session,
        AppointmentModification,
        [
            AppointmentModification.customer_id == customer.id,
            sa.or_(
                AppointmentModification.reason.is_not(None),
                AppointmentModification.details.is_not(None),
            ),
        ],
        reason=None,
        details=sa.null(),
    )
    linked = who.with_ids(own.retell_call_ids)
    if not linked.empty:
        counts["webhook_events"] += await _erase_webhook_events(session, tenant, linked)
        counts["api_call_logs"] += await _erase_call_logs(session, tenant, linked)
    if not who.empty:
        counts += await sweep(session, tenant, who)

    if not already:
        customer.name = ERASED_NAME
        customer.phone = phone_placeholder()
        customer.email = None
        customer.notes = None
        customer.erased_at = now
        counts["customers"] += 1
    await session.flush()
    if redis is not None and not who.empty:
        after_commit(session, lambda: forget_in_redis(redis, who))
    log.info(
        "customer erased",
        extra={"customer_id": customer.id, "already_erased": already, "rows": sum(counts.values())},
    )
    assert customer.erased_at is not None
    return ErasureSummary(
        customer_id=customer.id,
        erased_at=customer.erased_at.isoformat(),
        already_erased=already,
        rows={table: count for table, count in sorted(counts.items()) if count},
    )


async def _erase_callbacks(session: AsyncSession, callback_ids: Sequence[str]) -> int:
    if not callback_ids:
        return 0
    changed = await update_rows(
        session,
        CallbackRequest,
        [
            CallbackRequest.id.in_(callback_ids),
            sa.or_(
                CallbackRequest.phone_number != ERASED,
                CallbackRequest.customer_name.is_not(None),
                CallbackRequest.reason != ERASED,
                CallbackRequest.preferred_time.is_not(None),
                CallbackRequest.resolution_notes.is_not(None),
                CallbackRequest.details.is_not(None),
            ),
        ],
        phone_number=ERASED,
        customer_name=None,
        reason=ERASED,
        preferred_time=None,
        resolution_notes=None,
        details=sa.null(),
    )
    await update_rows(
        session,
        CallbackEscalation,
        [
            CallbackEscalation.callback_request_id.in_(callback_ids),
            CallbackEscalation.notes.is_not(None),
        ],
        notes=None,
    )
    return changed


async def _erase_deliveries(
    session: AsyncSession, appointment_ids: Sequence[str], callback_ids: Sequence[str]
) -> int:
    """Messages to the customer keep their outcome but lose the address (hash included)."""
    scope = []
    if appointment_ids:
        scope.append(NotificationDelivery.appointment_id.in_(appointment_ids))
    if callback_ids:
        scope.append(NotificationDelivery.callback_id.in_(callback_ids))
    if not scope:
        return 0
    rows = await ids(
        session,
        sa.select(NotificationDelivery.id).where(
            sa.or_(*scope),
            NotificationDelivery.recipient_kind == "customer",
            NotificationDelivery.recipient_masked != ERASED,
        ),
    )
    for delivery_id in rows:
        await update_rows(
            session,
            NotificationDelivery,
            [NotificationDelivery.id == delivery_id],
            recipient_key=erased_hash(delivery_id),
            recipient_masked=ERASED,
            last_error=None,
        )
    return len(rows)


async def _mentioning_rows(
    session: AsyncSession, model: Any, columns: Sequence[Any], tenant: str, who: Identity
) -> list[Any]:
    """The company's rows of `model` whose `columns` mention the person (id first)."""
    rows = (
        await session.execute(
            sa.select(model.id, *columns).where(
                model.company_id == tenant, mentioning(columns, who)
            )
        )
    ).all()
    return [row for row in rows if any(scrub(value, who)[1] for value in row[1:])]


async def _erase_webhook_events(session: AsyncSession, tenant: str, who: Identity) -> int:
    """A raw webhook body about them is replaced whole: the rest of it is theirs too."""
    changed = 0
    for row in await _mentioning_rows(
        session, WebhookEvent, (WebhookEvent.payload, WebhookEvent.error_message), tenant, who
    ):
        changed += await update_rows(
            session,
            WebhookEvent,
            [WebhookEvent.id == row.id],
            payload=ERASED_PAYLOAD,
            error_message=None,
        )
    return changed


async def _erase_call_logs(session: AsyncSession, tenant: str, who: Identity) -> int:
    columns = (
        ApiCallLog.endpoint,
        ApiCallLog.request_payload,
        ApiCallLog.response_body,
        ApiCallLog.error_message,
    )
    changed = 0
    for row in await _mentioning_rows(session, ApiCallLog, columns, tenant, who):
        changed += await update_rows(
            session,
            ApiCallLog,
            [ApiCallLog.id == row.id],
            endpoint=scrub_text(row.endpoint, who)[:500],
            request_payload=sa.null(),
            response_body=sa.null(),
            error_message=None,
        )
    return changed


async def forget_in_redis(redis: Redis, who: Identity, batch: int = 500) -> int:
    """Delete Redis keys named after them (the per-number rate-limit buckets): run after the
    commit; a failure is logged, the database erasure stands."""
    needles = sorted(n for n in who.needles if n == who.digits or ("@" in n and "%" not in n))
    deleted = 0
    try:
        for needle in needles:
            pattern = "*" + "".join("\\" + c if c in "*?[]\\" else c for c in needle) + "*"
            keys = [key async for key in redis.scan_iter(match=pattern, count=batch)]
            if keys:
                deleted += int(await redis.delete(*keys))
    except Exception as exc:  # Redis down: those buckets expire on their own within minutes
        log.warning("erasure: Redis keys not removed", extra={"error": type(exc).__name__})
    return deleted
