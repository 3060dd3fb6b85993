"""Appointments and what guards them: locks, idempotency keys, the availability cache."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Mapped, Session, mapped_column

from shared.db.types import Money, StrEnum, UTCDateTime
from shared.models.base import Base, IdMixin, TenantMixin, TimestampMixin
from shared.security.references import LENGTH as REFERENCE_LENGTH
from shared.security.references import new_reference

APPOINTMENT_STATUSES = ("confirmed", "cancelled", "rescheduled", "completed", "no_show", "pending")
LIVE_STATUSES = ("confirmed", "pending")
SYNC_STATUSES = ("local_only", "pending", "synced", "failed")
SOURCES = ("agent", "api", "calcom")


class Appointment(IdMixin, TenantMixin, TimestampMixin, Base):
    """A booked appointment. `blocked_from`/`blocked_until` include the service's buffers."""

    __tablename__ = "appointments"
    __table_args__ = (
        sa.Index("ix_appointments_company_created", "company_id", "created_at"),
        sa.Index("ix_appointments_customer_start_status", "customer_id", "starts_at", "status"),
        sa.Index("ix_appointments_staff_start", "staff_id", "starts_at"),
        sa.Index("ix_appointments_staff_blocked", "staff_id", "blocked_from"),
        sa.Index("ix_appointments_availability", "branch_id", "staff_id", "starts_at", "status"),
        # The reminder cron's scan across companies: appointments starting in the next hours.
        sa.Index("ix_appointments_starts_at", "starts_at"),
        # The ops view and overview: a company's appointments whose Cal.com sync failed/pends.
        sa.Index("ix_appointments_company_sync", "company_id", "sync_status"),
        sa.CheckConstraint("ends_at > starts_at", name="end_after_start"),
        # Unique per company; an index (not a table constraint) so the migration adds it to
        # SQLite without rebuilding the table.
        sa.Index("uq_appointments_company_reference", "company_id", "reference", unique=True),
    )

    branch_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("branches.id", ondelete="CASCADE")
    )
    service_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("services.id", ondelete="CASCADE"), index=True
    )
    staff_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("staff.id", ondelete="CASCADE")
    )
    customer_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("customers.id", ondelete="CASCADE")
    )
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    blocked_from: Mapped[datetime] = mapped_column(UTCDateTime())
    blocked_until: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(
        StrEnum(*APPOINTMENT_STATUSES, name="status"), default="confirmed"
    )
    sync_status: Mapped[str] = mapped_column(
        StrEnum(*SYNC_STATUSES, name="sync_status"), default="local_only"
    )
    source: Mapped[str] = mapped_column(StrEnum(*SOURCES, name="source"), default="api")
    calcom_booking_uid: Mapped[str | None] = mapped_column(sa.String(100), unique=True)
    call_id: Mapped[str | None] = mapped_column(sa.String(100), index=True)
    price: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0.00"))
    currency: Mapped[str] = mapped_column(sa.String(3), default="EUR")
    notes: Mapped[str | None] = mapped_column(sa.Text)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancellation_reason: Mapped[str | None] = mapped_column(sa.String(500))
    rescheduled_from_id: Mapped[str | None] = mapped_column(sa.String(36))
    sync_error: Mapped[str | None] = mapped_column(sa.Text)
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(sa.Integer, default=1)
    # The booking reference callers read out (shared/security/references.py); the ORM assigns a free
    # one at flush (`_assign_references`), the column default covers Core inserts.
    reference: Mapped[str] = mapped_column(sa.String(REFERENCE_LENGTH), default=new_reference)


@event.listens_for(Session, "before_flush")
def _assign_references(session: Session, _ctx: Any, _instances: Any) -> None:
    """Give every new appointment a reference no appointment of its company has yet: draw
    candidates, drop those already stored (one query per company), redraw on collision. A
    clash between two concurrent flushes (odds ~1e-9) is refused by the UNIQUE constraint."""
    pending: dict[str, list[Appointment]] = defaultdict(list)
    for obj in session.new:
        if isinstance(obj, Appointment) and obj.reference is None:
            company = obj.company_id or session.info.get("tenant")
            pending[str(company)].append(obj)
    for company_id, rows in pending.items():
        while rows:
            candidates = {new_reference() for _ in range(len(rows) + 2)}
            taken = set(
                session.scalars(
                    sa.select(Appointment.reference).where(
                        Appointment.company_id == company_id,
                        Appointment.reference.in_(candidates),
                    )
                )
            )
            taken |= {r.reference for r in session.new if isinstance(r, Appointment)}
            free = sorted(candidates - taken)
            while rows and free:
                rows.pop().reference = free.pop()


class AppointmentLock(IdMixin, TenantMixin, Base):
    """A held time slot (the seeds' time-slot locking table); UNIQUE per staff and start."""

    __tablename__ = "appointment_locks"
    __table_args__ = (sa.UniqueConstraint("branch_id", "staff_id", "start_time"),)

    branch_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("branches.id", ondelete="CASCADE")
    )
    staff_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("staff.id", ondelete="CASCADE"), index=True
    )
    start_time: Mapped[datetime] = mapped_column(UTCDateTime())
    end_time: Mapped[datetime] = mapped_column(UTCDateTime())
    lock_token: Mapped[str] = mapped_column(sa.String(36))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class IdempotencyKey(IdMixin, TenantMixin, Base):
    """A stored answer for a keyed request (Stripe/IETF semantics), UNIQUE per company and key."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (sa.UniqueConstraint("company_id", "key"),)

    key: Mapped[str] = mapped_column(sa.String(255))
    request_fingerprint: Mapped[str] = mapped_column(sa.String(64))
    response_status: Mapped[int | None] = mapped_column(sa.Integer)
    response_body: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class AvailabilityCache(IdMixin, TenantMixin, Base):
    __tablename__ = "availability_cache"
    __table_args__ = (sa.Index("ix_availability_cache_branch_date", "branch_id", "date"),)

    cache_key: Mapped[str] = mapped_column(sa.String(255), unique=True)
    branch_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("branches.id", ondelete="CASCADE")
    )
    date: Mapped[date] = mapped_column(sa.Date)
    service_id: Mapped[str | None] = mapped_column(sa.String(36))
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
