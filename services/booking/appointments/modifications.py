"""The audit trail of changes and its materialized per-customer counters, written in the same
transaction as the change. Quota enforcement is atomic per customer: the customer row is locked
(SQLite: the write transaction already holds the database lock), then the window is recounted.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.appointments.fence import is_sqlite
from shared.db.types import utcnow
from shared.errors import PolicyViolation
from shared.models import (
    Appointment,
    AppointmentModification,
    AppointmentModificationStat,
    Customer,
)

STAT_FOR = {"cancel": "cancellation_count", "reschedule": "reschedule_count"}


async def lock_customer(session: AsyncSession, customer_id: str) -> None:
    if not is_sqlite(session):
        await session.execute(
            sa.select(Customer.id).where(Customer.id == customer_id).with_for_update()
        )


async def enforce_quota(
    session: AsyncSession,
    *,
    customer_id: str,
    modification_type: str,
    limit: int | None,
    window_days: int,
    now: datetime,
) -> None:
    """Re-check the rolling quota under the customer lock (two replicas cannot both pass)."""
    if limit is None:
        return
    used = await session.scalar(
        sa.select(sa.func.count())
        .select_from(AppointmentModification)
        .where(
            AppointmentModification.customer_id == customer_id,
            AppointmentModification.modification_type == modification_type,
            AppointmentModification.created_at > now - timedelta(days=window_days),
        )
    )
    if (used or 0) >= limit:
        raise PolicyViolation(
            "The customer has reached the limit of changes for this period.",
            reason="quota_exceeded",
            quota={"used": used, "limit": limit, "window_days": window_days},
        )


async def record(
    session: AsyncSession,
    appointment: Appointment,
    *,
    modification_type: str,
    actor: str,
    old_starts_at: datetime | None,
    new_starts_at: datetime | None,
    fee: Decimal,
    currency: str,
    within_policy: bool,
    reason: str | None,
    now: datetime | None = None,
) -> AppointmentModification:
    """Write the audit row and bump the customer's counter for the UTC day."""
    now = now or utcnow()
    modification = AppointmentModification(
        appointment_id=appointment.id,
        customer_id=appointment.customer_id,
        modification_type=modification_type,
        actor=actor,
        old_starts_at=old_starts_at,
        new_starts_at=new_starts_at,
        fee=fee,
        currency=currency,
        within_policy=within_policy,
        reason=reason,
        created_at=now,
    )
    session.add(modification)
    stat_type = STAT_FOR.get(modification_type)
    if stat_type is not None:
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        result = await session.execute(
            sa.update(AppointmentModificationStat)
            .where(
                AppointmentModificationStat.customer_id == appointment.customer_id,
                AppointmentModificationStat.stat_type == stat_type,
                AppointmentModificationStat.period_start == day,
            )
            .values(count=AppointmentModificationStat.count + 1, calculated_at=now)
        )
        if getattr(result, "rowcount", 0) == 0:  # the customer lock makes this race-free
            session.add(
                AppointmentModificationStat(
                    customer_id=appointment.customer_id,
                    stat_type=stat_type,
                    period_start=day,
                    period_end=day + timedelta(days=1),
                    count=1,
                    calculated_at=now,
                )
            )
    return modification
