"""Tenants and their structure: companies, branches, services, staff, schedules."""

from __future__ import annotations

from datetime import datetime, time
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, synonym

from shared.db.types import Money, UTCDateTime
from shared.models.base import Base, IdMixin, TenantMixin, TenantScoped, TimestampMixin
from shared.security.secrets_at_rest import EncryptedString


class Company(IdMixin, TenantScoped, TimestampMixin, Base):
    """The tenant. Retell/Cal.com secrets live here, encrypted at rest (EncryptedString: HMAC
    verification needs the plain value, so they are encrypted, not hashed)."""

    __tablename__ = "companies"

    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    timezone: Mapped[str] = mapped_column(sa.String(64), default="Europe/Berlin")
    retell_api_key: Mapped[str | None] = mapped_column(EncryptedString())
    calcom_webhook_secret: Mapped[str | None] = mapped_column(EncryptedString())
    calcom_api_key: Mapped[str | None] = mapped_column(EncryptedString())
    calcom_base_url: Mapped[str | None] = mapped_column(sa.String(255))
    # Upper bound of the last completed reconciliation pull (GET /v2/bookings?afterUpdatedAt=).
    calcom_reconciled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    min_notice_minutes: Mapped[int] = mapped_column(sa.Integer, default=120)
    booking_window_days: Mapped[int] = mapped_column(sa.Integer, default=60)
    settings: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    # The tenant filter's column (shared.db.tenancy): a company is its own tenant.
    company_id: Mapped[str] = synonym("id")


class Branch(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "branches"
    __table_args__ = (sa.UniqueConstraint("company_id", "name"),)

    name: Mapped[str] = mapped_column(sa.String(200))
    timezone: Mapped[str] = mapped_column(sa.String(64))
    address_line: Mapped[str | None] = mapped_column(sa.String(255))
    postal_code: Mapped[str | None] = mapped_column(sa.String(20))
    city: Mapped[str | None] = mapped_column(sa.String(100))
    country: Mapped[str] = mapped_column(sa.String(2), default="DE")
    phone: Mapped[str | None] = mapped_column(sa.String(20))
    email: Mapped[str | None] = mapped_column(sa.String(255))
    min_notice_minutes: Mapped[int | None] = mapped_column(sa.Integer)
    booking_window_days: Mapped[int | None] = mapped_column(sa.Integer)
    callback_sla_minutes: Mapped[int | None] = mapped_column(sa.Integer)
    # Who an overdue callback goes to, level by level: [{"staff_id", "after_minutes"}], where
    # `after_minutes` counts from the callback's due time (level 1 usually 0).
    callback_escalation_chain: Mapped[list[dict[str, Any]] | None] = mapped_column(sa.JSON)
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)


class Service(IdMixin, TenantMixin, TimestampMixin, Base):
    """A bookable service; `branch_id` NULL means offered by every branch."""

    __tablename__ = "services"
    __table_args__ = (
        sa.UniqueConstraint("company_id", "name"),
        sa.CheckConstraint("duration_minutes > 0", name="duration_positive"),
        sa.CheckConstraint("price >= 0", name="price_not_negative"),
        sa.CheckConstraint(
            "buffer_before_minutes >= 0 AND buffer_after_minutes >= 0", name="buffers_not_negative"
        ),
    )

    branch_id: Mapped[str | None] = mapped_column(
        sa.String(36), sa.ForeignKey("branches.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str | None] = mapped_column(sa.Text)
    duration_minutes: Mapped[int] = mapped_column(sa.Integer)
    price: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0.00"))
    currency: Mapped[str] = mapped_column(sa.String(3), default="EUR")
    buffer_before_minutes: Mapped[int] = mapped_column(sa.Integer, default=0)
    buffer_after_minutes: Mapped[int] = mapped_column(sa.Integer, default=0)
    slot_step_minutes: Mapped[int] = mapped_column(sa.Integer, default=15)
    calcom_event_type_id: Mapped[int | None] = mapped_column(sa.Integer, index=True)
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)


class Staff(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "staff"

    branch_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("branches.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(200))
    email: Mapped[str | None] = mapped_column(sa.String(255))
    phone: Mapped[str | None] = mapped_column(sa.String(20))
    calcom_user_email: Mapped[str | None] = mapped_column(sa.String(255), index=True)
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)


class StaffService(IdMixin, TenantMixin, TimestampMixin, Base):
    """Which staff member may perform which service."""

    __tablename__ = "staff_services"
    __table_args__ = (sa.UniqueConstraint("staff_id", "service_id"),)

    staff_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("staff.id", ondelete="CASCADE")
    )
    service_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("services.id", ondelete="CASCADE"), index=True
    )
    skill_level: Mapped[int] = mapped_column(sa.Integer, default=1)


class WorkingHours(IdMixin, TenantMixin, TimestampMixin, Base):
    """One working interval of a staff member on a weekday (0 = Monday), branch-local time.

    Several intervals per weekday are allowed; the gaps between them are breaks.
    """

    __tablename__ = "working_hours"
    __table_args__ = (
        sa.Index("ix_working_hours_staff_weekday", "staff_id", "weekday", "start_time"),
        sa.CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday_range"),
        sa.CheckConstraint("end_time > start_time", name="end_after_start"),
    )

    staff_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("staff.id", ondelete="CASCADE")
    )
    weekday: Mapped[int] = mapped_column(sa.Integer)
    start_time: Mapped[time] = mapped_column(sa.Time)
    end_time: Mapped[time] = mapped_column(sa.Time)


class TimeOff(IdMixin, TenantMixin, TimestampMixin, Base):
    """An absence of a staff member, as UTC instants."""

    __tablename__ = "time_off"
    __table_args__ = (
        sa.Index("ix_time_off_staff_starts", "staff_id", "starts_at"),
        sa.CheckConstraint("ends_at > starts_at", name="end_after_start"),
    )

    staff_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("staff.id", ondelete="CASCADE")
    )
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str | None] = mapped_column(sa.String(255))
