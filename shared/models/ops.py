"""What operators look at: booking attempts that failed with an error (not a refusal)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.types import StrEnum, UTCDateTime
from shared.models.base import Base, IdMixin, TenantMixin

FAILURE_SOURCES = ("agent", "api")


class BookingFailure(IdMixin, TenantMixin, Base):
    """A booking attempt that ended in an error (5xx, policy/database unavailable).

    Written in its own transaction after the attempt's transaction rolled back, so it is the
    only trace the attempt leaves. No foreign keys on service/staff: the ids are what the
    caller sent, and evidence must not be refused because a reference is wrong or gone.
    """

    __tablename__ = "booking_failures"
    __table_args__ = (sa.Index("ix_booking_failures_company_created", "company_id", "created_at"),)

    # The composite index serves company lookups: no single-column one as TenantMixin adds.
    company_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("companies.id", ondelete="CASCADE"), sort_order=-9
    )
    correlation_id: Mapped[str | None] = mapped_column(sa.String(128))
    call_id: Mapped[str | None] = mapped_column(sa.String(100))
    source: Mapped[str] = mapped_column(StrEnum(*FAILURE_SOURCES, name="source"))
    error_code: Mapped[str] = mapped_column(sa.String(64))
    error_message: Mapped[str] = mapped_column(sa.Text)
    service_id: Mapped[str | None] = mapped_column(sa.String(36))
    staff_id: Mapped[str | None] = mapped_column(sa.String(36))
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    http_status: Mapped[int] = mapped_column(sa.Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
