"""Callback requests left by callers the agent could not help, and their escalations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.types import StrEnum, UTCDateTime
from shared.models.base import Base, IdMixin, TenantMixin, TimestampMixin

CALLBACK_STATUSES = ("pending", "assigned", "contacted", "resolved", "expired")
CALLBACK_PRIORITIES = ("normal", "high", "urgent")


class CallbackRequest(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "callback_requests"
    __table_args__ = (
        sa.Index("ix_callback_requests_status_due", "company_id", "status", "due_at"),
        sa.Index("ix_callback_requests_branch_status", "branch_id", "status"),
        sa.Index("ix_callback_requests_next_escalation", "next_escalation_at"),
    )

    branch_id: Mapped[str | None] = mapped_column(
        sa.String(36), sa.ForeignKey("branches.id", ondelete="CASCADE")
    )
    customer_id: Mapped[str | None] = mapped_column(
        sa.String(36), sa.ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    service_id: Mapped[str | None] = mapped_column(
        sa.String(36), sa.ForeignKey("services.id", ondelete="SET NULL")
    )
    staff_id: Mapped[str | None] = mapped_column(
        sa.String(36), sa.ForeignKey("staff.id", ondelete="SET NULL")
    )
    assigned_to: Mapped[str | None] = mapped_column(
        sa.String(36), sa.ForeignKey("staff.id", ondelete="SET NULL")
    )
    call_id: Mapped[str | None] = mapped_column(sa.String(100), index=True)
    phone_number: Mapped[str] = mapped_column(sa.String(20))
    customer_name: Mapped[str | None] = mapped_column(sa.String(200))
    reason: Mapped[str] = mapped_column(sa.String(1000))
    preferred_time: Mapped[str | None] = mapped_column(sa.String(200))
    priority: Mapped[str] = mapped_column(
        StrEnum(*CALLBACK_PRIORITIES, name="priority"), default="normal"
    )
    status: Mapped[str] = mapped_column(
        StrEnum(*CALLBACK_STATUSES, name="status"), default="pending"
    )
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    contacted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When the escalation cron must look at this callback next: `due_at` at creation, the next
    # level's time after each escalation, NULL once it is contacted, resolved or the branch's
    # escalation chain is exhausted.
    next_escalation_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The highest escalation level written (0: never escalated), kept with each
    # `callback_escalations` row in the same transaction: lists show it without counting.
    escalation_level: Mapped[int] = mapped_column(
        sa.Integer, default=0, server_default=sa.text("0")
    )
    resolution_notes: Mapped[str | None] = mapped_column(sa.Text)
    details: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)


class CallbackEscalation(IdMixin, TenantMixin, Base):
    __tablename__ = "callback_escalations"
    __table_args__ = (
        sa.UniqueConstraint("callback_request_id", "level", name="uq_callback_escalations_level"),
    )

    callback_request_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("callback_requests.id", ondelete="CASCADE"), index=True
    )
    escalation_reason: Mapped[str] = mapped_column(sa.String(100))
    escalated_from: Mapped[str | None] = mapped_column(sa.String(36))
    escalated_to: Mapped[str | None] = mapped_column(sa.String(36))
    level: Mapped[int] = mapped_column(sa.Integer, default=1)
    escalated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    notes: Mapped[str | None] = mapped_column(sa.Text)
